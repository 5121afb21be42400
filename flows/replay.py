"""`sre-space replay FILE... --out DIR`: recordings through the same flow, as fast as it goes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import cluster_main, run_main

from flows.backtest import backtest, labels_path
from flows.build import build_signals
from flows.diagnose_replay import diagnose_replay, diagnosis_table
from flows.progress import Progress
from flows.scout import build_scout
from flows.sources import recording_input
from operators.detect.scoring import render_table
from sinks.archive import ArchiveSink
from sinks.diagnosis.scoring import label_commits
from sinks.outputs.jsonl_sink import JsonlPartsSink, merge_parts
from sre_space.records import SignalWindow, read_jsonl
from sre_space.settings import PipelineConfig, load_pipeline_config

# output file -> sorted (parallel streams) or in emission order (one stateful key, order is meaning)
OUTPUTS = {"signals": True, "deadletters": True, "anomalies": False, "incidents": False}


def build_replay_flow(
    paths: Sequence[str | Path],
    out: str | Path,
    config: PipelineConfig,
    archive: str | Path | None = None,
    progress: Progress | None = None,
) -> Dataflow:
    """Recordings in, JSON-lines part files out, on an event-time-only clock."""
    flow = Dataflow("sre_space_replay")
    raw, _ = recording_input(flow, paths)
    if progress is not None:
        raw = op.inspect("progress", raw, progress)
    streams = build_signals(flow, raw, config, deterministic_clock=True)
    if archive is not None:
        op.output(
            "archive_out",
            streams.decoded,
            ArchiveSink(
                archive,
                config.signals.selected_attributes,
                sample_rate=config.archive.sample_rate,
                flush_rows=config.archive.flush_rows,
            ),
        )
    op.output("signals_out", streams.signals, JsonlPartsSink(out, "signals"))
    op.output("dead_out", streams.deadletters, JsonlPartsSink(out, "deadletters"))
    scout = build_scout(streams.signals, streams.edges, config, live=False)
    op.output("anomalies_out", scout.detections, JsonlPartsSink(out, "anomalies"))
    op.output("incidents_out", scout.incidents, JsonlPartsSink(out, "incidents"))
    return flow


def replay(
    paths: Sequence[str | Path],
    out: str | Path,
    config: PipelineConfig | None = None,
    workers: int = 1,
    archive: str | Path | None = None,
    show_progress: bool = False,
    recovery: str | Path | None = None,
    epoch_s: float = 1.0,
) -> dict[str, Path]:
    """Run recordings through the flow; returns the files written in `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    resuming = recovery is not None and Path(recovery).exists()
    for name in OUTPUTS:
        # A resumed run continues its part files: the snapshot only replays what came after it.
        parts = [] if resuming else list(out.glob(f"{name}.part-*.jsonl"))
        for stale in [out / f"{name}.jsonl", *parts]:
            stale.unlink(missing_ok=True)
    kwargs: dict[str, Any] = {}
    if recovery is not None:
        if not resuming:
            Path(recovery).mkdir(parents=True)
            init_db_dir(Path(recovery), 1)
        kwargs = {
            "epoch_interval": timedelta(seconds=epoch_s),
            "recovery_config": RecoveryConfig(Path(recovery)),
        }
    progress = Progress(paths) if show_progress else None
    flow = build_replay_flow(paths, out, config or load_pipeline_config(), archive, progress)
    try:
        if workers == 1:
            run_main(flow, **kwargs)
        else:
            cluster_main(flow, [], 0, worker_count_per_proc=workers, **kwargs)
    finally:
        if progress is not None:
            progress.close()
    return {name: merge_parts(out, name, sort=sort) for name, sort in OUTPUTS.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="+", help="recordings: OTLP/JSON lines (.gz) or length-prefixed proto"
    )
    parser.add_argument("--out", required=True, help="output folder (signals.jsonl, ...)")
    parser.add_argument("--config", help="pipeline config YAML merged over the defaults")
    parser.add_argument("--workers", type=int, default=1, help="Bytewax worker threads")
    parser.add_argument("--archive", help="also write the span archive (Parquet) to this folder")
    parser.add_argument(
        "--labels",
        nargs="*",
        help="score against ground truth: one labels file per recording (none: FILE.labels.json);"
        " each recording is replayed on its own into OUT/<name>/ and OUT/report.json is written",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    parser.add_argument(
        "--recovery",
        help="Bytewax recovery folder: snapshots every --epoch seconds; run again to resume",
    )
    parser.add_argument("--epoch", type=float, default=1.0, help="seconds between snapshots")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="replay: %(message)s", stream=sys.stderr)
    config = load_pipeline_config(args.config)
    show = not args.no_progress and sys.stderr.isatty()
    if args.labels is not None:
        report = backtest(
            args.files,
            args.labels,
            args.out,
            lambda paths, folder: replay(
                paths, folder, config, workers=args.workers, show_progress=show
            ),
        )
        print(render_table(report))
        print(diagnosis_table(report))
        print(f"report: {Path(args.out) / 'report.json'}")
        return 0
    t0 = time.perf_counter()
    files = replay(
        args.files,
        args.out,
        config,
        workers=args.workers,
        archive=args.archive,
        show_progress=show,
        recovery=args.recovery,
        epoch_s=args.epoch,
    )
    elapsed = time.perf_counter() - t0
    signals = read_jsonl(str(files["signals"]), SignalWindow)
    spans = sum(s.count for s in signals if s.kind == "span")
    dead = sum(1 for line in files["deadletters"].read_text().splitlines() if line)
    print(
        f"replayed {len(args.files)} file(s): {spans} spans -> {len(signals)} signals, "
        f"{dead} dead letters in {elapsed:.2f} s ({spans / max(elapsed, 1e-9):,.0f} spans/s)",
        file=sys.stderr,
    )
    # The Brain on every incident; a recording's labels, when present, carry its GitOps history.
    commits: list[dict[str, Any]] = []
    for recording in args.files:
        labels = labels_path(recording)
        if labels.exists():
            commits += label_commits(json.loads(labels.read_text(encoding="utf-8")))
    diagnoses = diagnose_replay(args.files, args.out, commits)
    files["diagnoses"] = Path(args.out) / "diagnoses.jsonl"
    print(f"diagnosed {len(diagnoses)} incident(s)", file=sys.stderr)
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0
