"""Kill -9 the production flow while it tails Kafka, restart it on its recovery store: the same
incidents as a run that was never killed, none lost, none duplicated in the store.

Both runs are live (`SRE_KAFKA_TAIL=true`, `python -m bytewax.run flows.main -r DIR`), fed the
same oom recording in two halves: the first half before the flow starts, the second while it runs
(after the kill and restart, in the killed run). Event-time clock, so the runs are comparable.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chaos.recorder import record
from operators.otlp.messages import Decoded, DecodeLimits, decode_message
from operators.otlp.recording import iter_recording
from sinks.store.sqlite import Store
from sre_space.harness.rig import start_kafka_flow
from tests.reliability.helpers import committed_epoch, flow_settings, flow_topics

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def split_recording(path: Path) -> tuple[list[bytes], list[bytes]]:
    """The recording's export requests, as spans and metrics messages in recorded order."""
    spans: list[bytes] = []
    metrics: list[bytes] = []
    for msg in iter_recording(path):
        decoded = decode_message(msg, DecodeLimits())
        assert isinstance(decoded, Decoded), decoded
        (spans if decoded.spans is not None and len(decoded.spans) else metrics).append(msg.value)
    return spans, metrics


def store_counts(state: Path) -> tuple[int, int]:
    """How many signals and incident events the flow has written to its store so far."""
    db = state / "sre.db"
    if not db.exists():
        return 0, 0
    with Store(db) as store:
        return store.count("signals"), store.count("incident_events")


def wait_quiet(
    state: Path,
    flow: subprocess.Popen[bytes],
    quiet_s: float = 4.0,
    at_least: tuple[int, int] = (0, 0),
) -> None:
    """Until the flow has written at least `at_least` (signals, incident events), or the deadline
    passes (the caller's comparison then shows what is missing), and then nothing new for
    `quiet_s`.

    Quiet alone is not done: in a loaded full run a restarted flow (recovery, rebalance,
    Python start-up) can pause longer than `quiet_s` mid-stream. Signals alone are not done
    either: the Scout writes an incident's events after the signals that raise them."""
    deadline = time.monotonic() + 240
    last, since = (-1, -1), time.monotonic()
    want_signals, want_events = max(at_least[0], 1), at_least[1]
    while time.monotonic() < deadline:
        assert flow.poll() is None, "the flow died"
        counts = store_counts(state)
        if counts != last:
            last, since = counts, time.monotonic()
        elif (
            counts[0] >= want_signals
            and counts[1] >= want_events
            and time.monotonic() - since >= quiet_s
        ):
            return
        time.sleep(0.2)
    assert last[0] > 0, "the flow wrote no signal in 240 s"


def live_run(
    tmp: Path,
    bootstrap: str,
    topics: dict[str, str],
    halves: list[dict[str, list[bytes]]],
    produce: Any,
    kill: bool,
    expect: tuple[int, int] = (0, 0),
) -> dict[str, Any]:
    """Produce half 1, start the flow, (kill -9 and restart it), produce half 2, let it finish."""
    settings = flow_settings(
        bootstrap, topics, tmp, tail=True, deterministic_clock=True, lateness_s=5
    )
    recovery = tmp / "recovery"
    recovery.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True)
    log = tmp / "flow.log"
    recovery_args = ["-r", str(recovery), "-s", "1", "-b", "0"]
    first, second = halves
    for kind, values in first.items():
        produce(topics[f"{kind}_topic"], [(None, v) for v in values])
    flow = start_kafka_flow(settings, bootstrap, log, deterministic_clock=True, args=recovery_args)
    resumed_at = 0
    if kill:
        deadline = time.monotonic() + 120
        while committed_epoch(recovery) < 2 or store_counts(settings.state_dir)[0] == 0:
            assert flow.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        flow.send_signal(signal.SIGKILL)
        flow.wait(timeout=30)
        resumed_at = committed_epoch(recovery)
        flow = start_kafka_flow(
            settings, bootstrap, log, deterministic_clock=True, args=recovery_args
        )
    for kind, values in second.items():
        produce(topics[f"{kind}_topic"], [(None, v) for v in values])
    try:
        wait_quiet(settings.state_dir, flow, at_least=expect)
    finally:
        flow.send_signal(signal.SIGINT)
        try:
            flow.wait(timeout=30)
        except subprocess.TimeoutExpired:
            flow.kill()
    with Store(settings.state_dir / "sre.db") as store:
        incidents = {
            i["id"]: (i["opened_at"], tuple(i["services"]), i["state"])
            for i in store.query("incidents")
        }
        events = sorted(
            json.dumps([e["id"], e["event"], e["updated_at"]])
            for e in store.query("incident_events")
        )
        signals = store.count("signals")
    return {"incidents": incidents, "events": events, "signals": signals, "resumed_at": resumed_at}


def test_killed_live_flow_resumes_with_the_same_incidents(
    tmp_path: Path, kafka_bootstrap: str, topic_factory: Any, produce: Any, consume_all: Any
) -> None:
    recording = tmp_path / "oom.pb"
    record("oom", 1, 20 * 60, recording, onset_s=5 * 60, bundle=False)
    spans, metrics = split_recording(recording)
    cut_s, cut_m = len(spans) // 2, len(metrics) // 2
    halves = [
        {"spans": spans[:cut_s], "metrics": metrics[:cut_m]},
        {"spans": spans[cut_s:], "metrics": metrics[cut_m:]},
    ]

    clean_topics = flow_topics(topic_factory)
    clean = live_run(tmp_path / "clean", kafka_bootstrap, clean_topics, halves, produce, False)
    assert clean["incidents"], "the oom recording must raise an incident"

    killed_topics = flow_topics(topic_factory)
    killed = live_run(
        tmp_path / "killed",
        kafka_bootstrap,
        killed_topics,
        halves,
        produce,
        True,
        (clean["signals"], len(clean["events"])),
    )
    assert killed["resumed_at"] > 0  # it resumed from a snapshot, not from the start

    assert killed["incidents"] == clean["incidents"]
    assert killed["events"] == clean["events"]
    assert killed["signals"] == clean["signals"]
    # On the topic, Bytewax's at-least-once output may repeat what followed the last snapshot;
    # every event is there, and a repeat is the same (id, event, time): consumers key on it.
    out = [json.loads(r.value) for r in consume_all(killed_topics["incidents_topic"], idle=1.0)]
    on_topic = {json.dumps([e["id"], e["event"], e["updated_at"]]) for e in out}
    assert on_topic == set(clean["events"])
    print(
        f"live kill -9: {len(clean['incidents'])} incidents, {len(clean['events'])} events, "
        f"{clean['signals']} signals identical; resumed at epoch {killed['resumed_at']}; "
        f"{len(out) - len(on_topic)} events repeated on the topic"
    )
