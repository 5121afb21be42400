"""Live mode: the shop in real time, publishing OTLP to Kafka and obeying the control channel."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from chaos.control import ControlReader, status_path, write_atomic
from chaos.shop import Batch, Shop
from sre_space.kafka import KafkaPublisher
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339

Publish = Callable[[Batch], None]


def kafka_publisher(
    bootstrap: str,
    spans_topic: str = "otlp_spans",
    metrics_topic: str = "otlp_metrics",
    encoding: str = "otlp_proto",
    extra: dict[str, Any] | None = None,
    metrics_encoding: str | None = None,
) -> tuple[Publish, Callable[[], int]]:
    """A publish function writing what the Collector's Kafka exporter writes, and a flush.

    `encoding` is `otlp_proto` (default) or `otlp_json`; `metrics_encoding` defaults to it.
    """
    producer = KafkaPublisher(bootstrap, extra)

    def publish(batch: Batch) -> None:
        spans = batch.kind == "spans"
        topic = spans_topic if spans else metrics_topic
        enc = encoding if spans else (metrics_encoding or encoding)
        value = batch.json_line().encode() if enc == "otlp_json" else batch.proto_bytes()
        producer.send(topic, value)

    return publish, lambda: producer.flush(30)


def apply_command(shop: Shop, command: dict[str, Any], log: Callable[[str], None] = print) -> str:
    """Run one control command in the shop; a line for the log. With `at_ns` (event time) still
    ahead, the command runs at that tick instead, and `log` gets its line or its error then: a
    drill's fault starts at the same moment of the same traffic whatever the wall clock did."""
    at_ns = command.get("at_ns")
    if at_ns is not None and int(at_ns) > shop.now_ns:
        later = {k: v for k, v in command.items() if k != "at_ns"}
        shop.at(int(at_ns), lambda s: _logged(partial(_run_command, s, later), command, log))
        what = " ".join(str(w) for w in (command.get("cmd"), command.get("scenario")) if w)
        return f"scheduled {what} at {ns_to_rfc3339(int(at_ns))}"
    return _run_command(shop, command)


def _logged(run: Callable[[], str], command: dict[str, Any], log: Callable[[str], None]) -> None:
    """Run a command and log its line, or why it failed (a bad command never stops the shop)."""
    try:
        log(run())
    except (KeyError, ValueError) as exc:
        log(f"command {command.get('id')} failed: {exc}")


def _run_command(shop: Shop, command: dict[str, Any]) -> str:
    if command.get("cmd") == "clear":
        shop.clear(command.get("tag"))
        return "cleared " + (command.get("tag") or "every injection")
    if command.get("cmd") == "inject":
        inj = shop.inject(
            command["scenario"], command.get("service"), float(command.get("intensity", 1.0))
        )
        duration = command.get("duration_s")
        if duration:
            tag = inj.tag
            shop.at(shop.now_ns + int(float(duration) * NS_PER_S), lambda s: s.clear(tag))
        return f"injected {inj.scenario} into {inj.service} (tag {inj.tag})"
    return f"ignored unknown command {command!r}"


def write_status(shop: Shop, state_dir: Path) -> None:
    """Tell `python -m chaos` what is running."""
    write_atomic(
        status_path(state_dir),
        {
            "time": ns_to_rfc3339(shop.now_ns),
            "head": shop.head,
            "injections": [
                {
                    "tag": i.tag,
                    "scenario": i.scenario,
                    "service": i.service,
                    "onset": ns_to_rfc3339(i.onset_ns),
                }
                for i in shop.injections.values()
            ],
            "manifest_errors": shop.manifest_errors,
        },
    )


def run_live(
    shop: Shop,
    publish: Publish,
    state_dir: Path,
    speed: float = 1.0,
    duration_s: float | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """Step the shop in (scaled) real time, publishing every batch, until the duration or Ctrl-C."""
    control = ControlReader(state_dir)
    wall0 = time.monotonic()
    event0 = shop.now_ns
    tick = shop.config.tick_s
    write_status(shop, state_dir)
    while duration_s is None or (shop.now_ns - event0) / NS_PER_S < duration_s:
        changed = False
        for command in control.poll():
            _logged(partial(apply_command, shop, command, log), command, log)
            changed = True
        before = len(shop.injections)
        head = shop.head
        for batch in shop.iter_batches(tick):
            publish(batch)
        # A new head (a merged fix, a revert) is a deploy: the reconciler watches the status for it.
        if changed or len(shop.injections) != before or shop.head != head:
            write_status(shop, state_dir)
        # pace event time to the wall clock (scaled by `speed`)
        due = wall0 + (shop.now_ns - event0) / NS_PER_S / speed
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
