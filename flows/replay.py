"""Replay recordings through the same flow as Kafka, as fast as it goes: signals, anomalies, incidents."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import cluster_main, run_main

from flows.build import build_signals
from flows.progress import Progress
from flows.sources import recording_input
from operators.otlp.recording import check_recordings
from operators.scout import build_scout
from sinks.archive import ArchiveSink
from sinks.outputs.jsonl_sink import JsonlPartsSink, merge_parts
from sre_space.settings import PipelineConfig, env_config_paths, load_pipeline_config

# output file -> sorted (parallel streams) or in emission order (one stateful key, order is meaning)
OUTPUTS = {"signals": True, "deadletters": True, "anomalies": False, "incidents": False}


def build_replay_flow(
    paths: Sequence[str | Path],
    out: str | Path,
    config: PipelineConfig,
    archive: str | Path | None = None,
    progress: Progress | None = None,
    signals: bool = True,
) -> Dataflow:
    """Recordings in, JSON-lines part files out, on an event-time-only clock (without the
    signals when `signals` is false)."""
    flow = Dataflow("sre_space_replay")
    raw, _ = recording_input(flow, paths)
    if progress is not None:
        raw = op.inspect("progress", raw, progress)
    streams = build_signals(
        flow, raw, config, deterministic_clock=True, archived=archive is not None
    )
    if archive is not None:
        # No retention: a backtest's archive holds its whole recording, however old its hours.
        op.output(
            "archive_out",
            streams.decoded,
            ArchiveSink.from_config(archive, config, retained=False),
        )
    if signals:
        op.output("signals_out", streams.signals, JsonlPartsSink(out, "signals"))
    op.output("dead_out", streams.deadletters, JsonlPartsSink(out, "deadletters"))
    # Nothing acts on a replay's verdicts as it goes: each window waits until it is whole.
    scout = build_scout(streams.signals, streams.edges, config, live=False, wait_disorder=True)
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
    signals: bool = True,
) -> dict[str, Path]:
    """Run recordings through the flow; returns the files written in `out`.

    `signals=False` leaves out `signals.jsonl` (a week of the shop's is gigabytes).
    """
    check_recordings(paths)
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
    config = config or load_pipeline_config(*env_config_paths())
    flow = build_replay_flow(paths, out, config, archive, progress, signals)
    try:
        if workers == 1:
            run_main(flow, **kwargs)
        else:
            cluster_main(flow, [], 0, worker_count_per_proc=workers, **kwargs)
    finally:
        if progress is not None:
            progress.close()
    names = [name for name in OUTPUTS if signals or name != "signals"]
    return {name: merge_parts(out, name, sort=OUTPUTS[name]) for name in names}
