"""Wait until a Kafka broker answers a metadata request.

Used by ``scripts/kafka/kafka`` after it starts the broker, and by its ``status`` command.
Readiness is a real client round trip (metadata listing at least one broker), not a line in the
log, because the log says "started" a little before the listener serves clients.

Exit codes: 0 ready, 1 not ready within the time limit, 2 the broker process died, 3 the
``confluent_kafka`` client is missing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

EXIT_READY = 0
EXIT_TIMEOUT = 1
EXIT_DIED = 2
EXIT_NO_CLIENT = 3


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) still accepts signal 0; /proc tells them apart.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state != "Z"


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _broker_ids(
    bootstrap: str, deadline: float, pid: int | None, cluster_id: str | None
) -> tuple[int, list[int]]:
    """Poll metadata until a broker answers; return (exit code, broker ids)."""
    try:
        from confluent_kafka.admin import AdminClient
    except ImportError:
        print(
            "wait_ready: the confluent_kafka package is missing from "
            f"{sys.executable}; run `make install` (it creates .venv) "
            "or set SRE_KAFKA_PYTHON to a Python that has it",
            file=sys.stderr,
        )
        return EXIT_NO_CLIENT, []

    # librdkafka logs every refused connection while the broker starts; that is expected here.
    quiet = logging.getLogger("sre_space.kafka.wait_ready")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "sre-space-wait-ready",
            # Reconnect quickly: the default back-off grows to 10 s and would hide a ready broker.
            "reconnect.backoff.ms": 100,
            "reconnect.backoff.max.ms": 500,
            "socket.connection.setup.timeout.ms": 2000,
            "logger": quiet,
            "error_cb": lambda _err: None,
        }
    )
    warned = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return EXIT_TIMEOUT, []
        if pid is not None and not _process_alive(pid):
            return EXIT_DIED, []
        try:
            metadata = admin.list_topics(timeout=min(2.0, max(remaining, 0.1)))
        except Exception:  # KafkaException while nothing answers yet; keep polling.
            time.sleep(0.2)
            continue
        if metadata.brokers and cluster_id and metadata.cluster_id != cluster_id:
            # Another broker holds the port (ours will fail to bind and exit): not ready.
            if not warned:
                print(
                    f"wait_ready: {bootstrap} is answered by cluster {metadata.cluster_id}, "
                    f"not by the one just formatted ({cluster_id})",
                    file=sys.stderr,
                )
                warned = True
        elif metadata.brokers:
            return EXIT_READY, sorted(metadata.brokers)
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="host:port to poll")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds before giving up")
    parser.add_argument("--pid", type=int, help="broker PID: stop early if it dies")
    parser.add_argument("--log", type=Path, help="broker log: its tail is printed on failure")
    parser.add_argument("--cluster-id", help="ready only when this cluster answers")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)

    started = time.monotonic()
    code, brokers = _broker_ids(args.bootstrap, started + args.timeout, args.pid, args.cluster_id)
    elapsed = time.monotonic() - started
    if code == EXIT_READY:
        if not args.quiet:
            print(
                f"wait_ready: broker(s) {brokers} answered on {args.bootstrap} after {elapsed:.1f} s",
                file=sys.stderr,
            )
        return code
    if code == EXIT_TIMEOUT:
        which = f"of cluster {args.cluster_id} " if args.cluster_id else ""
        message = (
            f"wait_ready: no broker {which}answered on {args.bootstrap} within {args.timeout:.0f} s"
        )
    elif code == EXIT_DIED:
        message = f"wait_ready: the broker process {args.pid} exited after {elapsed:.1f} s"
    else:
        return code
    print(message, file=sys.stderr)
    if args.log is not None:
        print(f"--- last lines of {args.log} ---", file=sys.stderr)
        print(_tail(args.log, 40), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
