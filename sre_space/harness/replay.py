"""`sre-space replay FILE... --out DIR`: recordings through the flow, then the Brain; with
`--labels`, scored against ground truth (a backtest)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from flows.replay import replay
from operators.otlp.recording import check_recordings
from operators.scout.detect.scoring import render_table
from sinks.brain.scoring import label_commits
from sre_space.harness.backtest import backtest, labels_path
from sre_space.harness.diagnose_replay import diagnose_replay, diagnosis_table
from sre_space.records import SignalWindow, read_jsonl
from sre_space.settings import config_paths, env_config_paths, load_pipeline_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="+", help="recordings: OTLP/JSON lines (.gz) or length-prefixed proto"
    )
    parser.add_argument("--out", required=True, help="output folder (signals.jsonl, ...)")
    parser.add_argument(
        "--config",
        action="append",
        help="pipeline config YAML merged over the defaults (repeatable; default: $SRE_CONFIG);"
        " a recording of the simulated shop wants chaos/site.yaml",
    )
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
    check_recordings(args.files)  # a missing file is a one-line error (exit 2), not a flow crash
    config = load_pipeline_config(
        *(config_paths(args.config) if args.config else env_config_paths())
    )
    show = not args.no_progress and sys.stderr.isatty()
    if args.labels is not None:
        report = backtest(
            args.files,
            args.labels,
            args.out,
            lambda paths, folder: replay(
                paths, folder, config, workers=args.workers, show_progress=show
            ),
            config,
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
    if dead:
        print(
            f"replay: warning: {dead} record(s) could not be read or decoded;"
            f" see {files['deadletters']}",
            file=sys.stderr,
        )
    # The Brain on every incident; a recording's labels, when present, carry its GitOps history.
    commits: list[dict[str, Any]] = []
    for recording in args.files:
        labels = labels_path(recording)
        if labels.exists():
            commits += label_commits(json.loads(labels.read_text(encoding="utf-8")))
    diagnoses = diagnose_replay(args.files, args.out, commits, config)
    files["diagnoses"] = Path(args.out) / "diagnoses.jsonl"
    print(f"diagnosed {len(diagnoses)} incident(s)", file=sys.stderr)
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0
