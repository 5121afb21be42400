"""CPU of the span archive by stage, on decoded requests, without Kafka or a dataflow around it.

    python -m bench.archive [--spans 1000000] [--spans-per-request 512] [--workload lean]
        [--full-archive FILES]

The requests are decoded first as the flow decodes them (the archive's text columns written in the
decoder's walk), then added a poll at a time (`--poll` requests, the Kafka source's batch) to a
`SpanArchive` in a temporary folder. Reported per million spans: the text columns' share of the
decoding (decoded with and without them), the caller's thread (conversion to Arrow, buffering,
hand-off), the writer thread (Parquet), and the archive's bytes per span. The flow pays both
threads' CPU; this splits it. `--full-archive` starts from an archive of that many files over
the 71 hours before the workload's, with the flow's retention on (its scan of the archive after
each file is the writer's too).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench.throughput import OUT, WORKLOADS, _workload
from bench.workload import T0_NS


def _fill(folder: str, files: int) -> None:
    """`files` small Parquet-named files over the 71 hours before the workload's, settled (old)."""
    for k in range(files):
        t = time.gmtime(T0_NS // 10**9 - 3600 * (1 + k % 71))
        hour = Path(folder, time.strftime("dt=%Y-%m-%d/hour=%H", t))
        hour.mkdir(parents=True, exist_ok=True)
        (hour / f"part-old-{k:06d}.parquet").write_bytes(b"x" * 1024)
    for hour in Path(folder).glob("dt=*/hour=*"):
        os.utime(hour, ns=(T0_NS, T0_NS))


def measure(
    n: int, per_request: int, workload: str, poll: int, full_archive: int = 0
) -> dict[str, float]:
    """Caller and writer CPU seconds per million spans, and bytes per span, for one workload."""
    from flows.build import decode_limits
    from operators.otlp import DecodeLimits, RawMessage, decode_message
    from operators.otlp.messages import Decoded
    from sinks.archive import Retention, SpanArchive
    from sre_space.settings import load_pipeline_config

    config = load_pipeline_config()
    selected = config.signals.selected_attributes
    messages = [
        RawMessage("bench", 0, i, data, "traces")
        for i, data in enumerate(_workload(n, per_request, workload))
    ]

    def decode_all(limits: DecodeLimits) -> tuple[list[Decoded], float]:
        c0 = time.process_time()
        out = [decode_message(m, limits) for m in messages]
        return [d for d in out if isinstance(d, Decoded)], time.process_time() - c0

    _, plain = decode_all(decode_limits(config, archived=False))
    decoded, with_text = decode_all(decode_limits(config, archived=True))
    assert len(decoded) == len(messages) and all(d.spans is not None for d in decoded)
    spans = sum(len(d.spans or ()) for d in decoded)
    with tempfile.TemporaryDirectory(prefix="sre-bench-archive-") as folder:
        retention = None
        if full_archive:
            _fill(folder, full_archive)
            retention = Retention(config.archive.max_age_hours, config.archive.max_bytes)
        archive = SpanArchive(folder, selected, retention=retention)
        c0, p0 = time.thread_time(), time.process_time()
        for lo in range(0, len(decoded), poll):
            archive.add(decoded[lo : lo + poll])
        files = archive.flush()
        caller = time.thread_time() - c0
        writer = time.process_time() - p0 - caller  # the other threads: the archive's writer
        size = sum(f.stat().st_size for f in files)
    per_m = 1e6 / spans
    return {
        "spans": spans,
        "decode_text_cpu_s_per_m": round((with_text - plain) * per_m, 3),
        "caller_cpu_s_per_m": round(caller * per_m, 3),
        "writer_cpu_s_per_m": round(writer * per_m, 3),
        "bytes_per_span": round(size / spans, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--spans-per-request", type=int, default=512)
    parser.add_argument("--workload", choices=WORKLOADS, default="lean")
    parser.add_argument("--poll", type=int, default=64, help="requests per consumer poll")
    parser.add_argument("--full-archive", type=int, default=0, metavar="FILES")
    args = parser.parse_args(argv)
    result = measure(
        args.spans, args.spans_per_request, args.workload, args.poll, args.full_archive
    )
    print(json.dumps(result))
    OUT.mkdir(parents=True, exist_ok=True)
    full = f"-full{args.full_archive}" if args.full_archive else ""
    name = f"archive-{args.workload}-{args.spans_per_request}{full}.json"
    (OUT / name).write_text(json.dumps({**vars(args), **result}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
