"""False alarms of the error-rate significance test on stationary series: the share of series
that get at least one error_rate anomaly although their error rate never changes.

    python -m bench.rate_false_alarms [--series 2000] [--windows 300] [--traffic 8] \
        [--error-rates 0.01 0.05] [--seed 0]

Each series draws its requests per window from Poisson(`--traffic`) and its errors from
Binomial(requests, rate), its rate taken in turn from `--error-rates`, through one
`SeriesDetector` with the default detection config. Reported: series with an alarm, their share
and its 95% Wilson upper bound, and the first alarms (seed, rate, window, observed, expected).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import numpy as np

from operators.scout.detect.config import DetectionConfig
from operators.scout.detect.series import SeriesDetector
from sre_space.records import Anomaly, SignalWindow

WINDOW_NS = 10_000_000_000
START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def _window(i: int, count: int, errors: int) -> SignalWindow:
    start = START_NS + i * WINDOW_NS
    return SignalWindow(
        kind="span",
        service="svc",
        operation="GET /",
        window_start=start,
        window_end=start + WINDOW_NS,
        count=count,
        errors=errors,
        error_rate=errors / count if count else 0.0,
        span_kind="server",
    )


def wilson_upper(hits: int, n: int, z: float = 1.96) -> float:
    """The upper end of the Wilson score interval of a share `hits / n`."""
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre + spread) / (1 + z * z / n)


def measure(
    series: int, windows: int, traffic: float, error_rates: list[float], seed: int = 0
) -> dict[str, Any]:
    """Run the stationary series; returns the alarm count, share, bound and first alarms."""
    config = DetectionConfig()
    alarms: list[dict[str, Any]] = []
    for k in range(series):
        rng = np.random.default_rng(seed + k)
        rate = error_rates[k % len(error_rates)]
        det = SeriesDetector(config)
        for i in range(windows):
            count = int(rng.poisson(traffic))
            errors = int(rng.binomial(count, rate)) if count else 0
            fired = [
                d.item
                for d in det.on_signal(_window(i, count, errors))
                if isinstance(d.item, Anomaly) and d.item.signal == "error_rate"
            ]
            if fired:
                a = fired[0]
                alarms.append(
                    {
                        "seed": seed + k,
                        "rate": rate,
                        "window": i,
                        "observed": a.observed,
                        "expected": a.expected,
                    }
                )
                break
    return {
        "series": series,
        "windows": windows,
        "traffic": traffic,
        "error_rates": error_rates,
        "alarmed": len(alarms),
        "share": len(alarms) / series,
        "share_upper95": wilson_upper(len(alarms), series),
        "first_alarms": alarms[:10],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--windows", type=int, default=300)
    parser.add_argument("--traffic", type=float, default=8.0)
    parser.add_argument("--error-rates", type=float, nargs="+", default=[0.01, 0.05])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = measure(args.series, args.windows, args.traffic, args.error_rates, args.seed)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
