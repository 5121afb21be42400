"""Days of clean traffic, streamed: the shop records into a named pipe that the replay reads.

A week of the shop is tens of gigabytes of OTLP, so it is never stored: the recorder runs in its
own process and the flow reads its output as it comes, with one Scout over the whole run (its
daily and weekly profiles are learnt as they would be live). Scored for false incidents; the
signals are not kept.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
from pathlib import Path
from typing import Any

from operators.scout.detect.scoring import score_recording
from sre_space.records import Incident, read_jsonl
from sre_space.timeutil import rfc3339_to_ns

DAY_S = 86_400.0


def _record(seed: int, duration_s: float, pipe: str) -> None:
    from chaos.recorder import HEALTHY, record

    record(HEALTHY, seed, duration_s, pipe, bundle=False)


def run_clean_days(days: float, seed: int, out: str | Path) -> dict[str, Any]:
    """Record `days` of clean traffic from the shop's epoch (a Monday), replay and score them."""
    from flows.replay import replay
    from sre_space.harness.site import shop_config

    out = Path(out)
    name = f"healthy-{days:g}d-seed{seed}"
    folder = out / name
    with tempfile.TemporaryDirectory(prefix="clean-days-") as tmp:
        pipe = Path(tmp) / f"{name}.pb"
        os.mkfifo(pipe)
        context = multiprocessing.get_context("spawn")
        recorder = context.Process(target=_record, args=(seed, days * DAY_S, str(pipe)))
        recorder.start()
        try:
            files = replay([pipe], folder, shop_config(), signals=False)
            recorder.join()
        finally:
            if recorder.is_alive():
                recorder.terminate()  # the replay failed: nothing reads the pipe any more
                recorder.join()
        if recorder.exitcode != 0:
            raise RuntimeError(f"the recorder of {name} exited with {recorder.exitcode}")
        labels = json.loads(Path(f"{pipe}.labels.json").read_text(encoding="utf-8"))
    (folder / "labels.json").write_text(json.dumps(labels, indent=2) + "\n", encoding="utf-8")
    result = score_recording(
        read_jsonl(str(files["incidents"]), Incident),
        None,
        start=rfc3339_to_ns(labels["start"]),
        end=rfc3339_to_ns(labels["stop"]),
        name=name,
    )
    result["scenario"] = labels["scenario"]
    result["seed"] = seed
    result["deploys"] = len(labels["noise"])
    return result
