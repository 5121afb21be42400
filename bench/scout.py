"""Metric series judged per window: the forecaster beside the naive median/MAD baseline.

    python -m bench.scout [--series 50000] [--windows 6] [--warm 30] [--out bench/out/scout.json]

`--series` metric series (a gauge each, noisy levels, a tenth with a daily season, a tenth
sparse counts) each get `--warm` windows of history, then `--windows` 10 s windows are timed
through `SeriesDetector.on_signal` (rule lookup, judging, persistence: the Scout's per-series
path) on one core. Reported per detector: seconds per window of all series (median), RSS of the
process after the run, and the state per series in bytes (its pickled snapshot, and the Python
objects it keeps). The naive baseline is the same path with `detection.metrics.enabled: false`:
the robust median/MAD rule that judged metrics before.
"""

from __future__ import annotations

import argparse
import gc
import json
import pickle
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from operators.scout.detect.config import DetectionConfig
from operators.scout.detect.forecast import ForecastConfig
from operators.scout.detect.series import SeriesDetector
from operators.scout.detect.tuning import Tuning
from sre_space.records import SignalWindow

NS = 1_000_000_000
T0 = 1_795_000_000 * NS


def _values(n: int, windows: int, rng: np.random.Generator) -> np.ndarray:
    """(windows, n) values: noisy levels, a tenth seasonal, a tenth sparse counts."""
    level = rng.uniform(1.0, 1000.0, n)
    x = level + rng.normal(0.0, 1.0, (windows, n)) * level * 0.05
    i = np.arange(windows)[:, None]
    season = slice(0, n // 10)
    x[:, season] += level[season] * 0.3 * np.sin(2 * np.pi * i / 8640.0)
    counts = slice(n // 10, n // 5)
    x[:, counts] = rng.poisson(0.3, (windows, n // 5 - n // 10))
    return np.round(x, 6)


def _deep_size(obj: Any, seen: set[int] | None = None) -> int:
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (BaseModel, Tuning)):
        return 0  # the config (and what is derived from it alone) is shared by every series
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)) or type(obj).__name__ == "deque":
        size += sum(_deep_size(v, seen) for v in obj)
    elif hasattr(obj, "__dict__"):
        size += _deep_size(vars(obj), seen)
    elif hasattr(obj, "__slots__"):
        size += sum(_deep_size(getattr(obj, s), seen) for s in obj.__slots__ if hasattr(obj, s))
    return size


def run(name: str, cfg: DetectionConfig, n: int, warm: int, windows: int) -> dict[str, Any]:
    """Warm `n` series, then time `windows` windows of all of them."""
    rng = np.random.default_rng(1)
    values = _values(n, warm + windows, rng)
    dets = [SeriesDetector(cfg) for _ in range(n)]
    names = [f"svc{i % 500}" for i in range(n)]
    metrics = [f"app.metric.{i}" for i in range(n)]
    timings = []
    fired = 0
    for w in range(warm + windows):
        start = T0 + w * 10 * NS
        sigs = [
            SignalWindow(
                kind="metric",
                service=names[i],
                metric=metrics[i],
                window_start=start,
                window_end=start + 10 * NS,
                value=float(values[w, i]),
                count=1,
            )
            for i in range(n)
        ]
        gc.collect()
        t = time.process_time()
        for det, sig in zip(dets, sigs, strict=True):
            fired += len(det.on_signal(sig))
        if w >= warm:
            timings.append(time.process_time() - t)
    sample = dets[: min(200, n)]
    pickled = statistics.mean(len(pickle.dumps(d.snapshot())) for d in sample)
    live = statistics.mean(_deep_size(d.fields) for d in sample)
    return {
        "detector": name,
        "series": n,
        "seconds_per_window": round(statistics.median(timings), 3),
        "us_per_series": round(statistics.median(timings) / n * 1e6, 1),
        "state_bytes_pickled": round(pickled),
        "state_bytes_python": round(live),
        "detections": fired,
        "rss_mib_after": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(argv: list[str] | None = None) -> int:
    """Run both detectors and print (and optionally write) the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=50_000)
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--warm", type=int, default=30)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    # RSS is a process high-water mark: the forecaster runs first, on a fresh process.
    results = [
        run("forecast", DetectionConfig(), args.series, args.warm, args.windows),
        run(
            "median/MAD (naive)",
            DetectionConfig(metrics=ForecastConfig(enabled=False)),
            args.series,
            args.warm,
            args.windows,
        ),
    ]
    for r in results:
        print(json.dumps(r))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
