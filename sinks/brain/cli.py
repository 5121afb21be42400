"""`sre-space diagnose`: the root cause of a time range of recorded OTLP, or what one trace says.

    sre-space diagnose FILE... --window START END [--baseline START END] [--json]
    sre-space diagnose --trace FILE [--json]
    sre-space diagnose --trace TRACE_ID [--json]     (from Jaeger's API v3 at SRE_JAEGER_URL)

Registered in `sre_space/cli.py` as the `diagnose` command.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from sinks.brain.config import DiagnosisConfig
from sinks.brain.engine import analyze
from sinks.brain.loading import load_metrics, load_spans
from sinks.brain.traces import analyze_trace
from sre_space.timeutil import rfc3339_to_ns


def parse_time(text: str) -> int:
    """RFC 3339 (`2026-11-28T14:05:00Z`) or an epoch number (seconds, or nanoseconds if >= 1e15)."""
    value = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        number = float(value)
        return int(number) if number >= 1e15 else int(number * 1e9)
    try:
        return rfc3339_to_ns(value)
    except ValueError:
        message = f"bad time {text!r}: use RFC 3339 (2026-11-28T14:05:00Z) or epoch seconds"
        raise argparse.ArgumentTypeError(message) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `sre-space diagnose`."""
    parser.add_argument("files", nargs="*", help="recorded OTLP/JSON files (spans and metrics)")
    parser.add_argument(
        "--trace",
        help="one trace: an OTLP/JSON or Jaeger API v3 file, or a trace id with SRE_JAEGER_URL",
    )
    parser.add_argument(
        "--window", nargs=2, type=parse_time, metavar=("START", "END"), help="incident window"
    )
    parser.add_argument(
        "--baseline",
        nargs=2,
        type=parse_time,
        metavar=("START", "END"),
        help="baseline window (default: the same length just before)",
    )
    parser.add_argument(
        "--changes", help="JSON file: a list of GitOps commits {sha, at, message, files}"
    )
    parser.add_argument("--metrics", nargs="*", default=[], help="more OTLP/JSON metric files")
    parser.add_argument("--incident-id", default="", help="incident id to put in the diagnosis")
    parser.add_argument(
        "--narrate", action="store_true", help="add an LLM narrative (needs OPENAI_API_KEY)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; 0 on an answer (abstaining included), 2 on bad usage or a missing
    file, 1 on unreadable input."""
    try:
        if args.trace:
            return _run_trace(args)
        if not args.files:
            print("diagnose: give FILE... --window START END, or --trace FILE", file=sys.stderr)
            return 2
        if not args.window:
            print("diagnose: --window START END is required with FILE...", file=sys.stderr)
            return 2
        return _run_window(args)
    except FileNotFoundError as exc:
        print(f"diagnose: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"diagnose: {exc}", file=sys.stderr)
        return 1


def _run_trace(args: argparse.Namespace) -> int:
    path = Path(args.trace)
    if path.exists():
        spans = load_spans([path])
    else:
        from sinks.brain.jaeger import client_from_settings
        from sre_space.settings import load_settings

        client = client_from_settings(load_settings())
        if client is None:
            print(
                f"diagnose: no such file {args.trace} (and SRE_JAEGER_URL is not set)",
                file=sys.stderr,
            )
            return 2
        result = client.trace(args.trace)
        if result.status == "not_found":
            print(
                f"diagnose: trace {args.trace} not found in Jaeger at {client.base_url}",
                file=sys.stderr,
            )
            return 1
        if result.status != "ok" or result.data is None:
            print(f"diagnose: Jaeger at {client.base_url}: {result.error}", file=sys.stderr)
            return 1
        spans = result.data
    analysis = analyze_trace(spans, DiagnosisConfig.from_settings())
    if args.json:
        print(json.dumps(analysis.to_dict(), indent=2, sort_keys=True))
        return 0
    print(f"trace {analysis.trace_id}: {analysis.spans} spans, {analysis.duration_ms:g} ms")
    if analysis.locus:
        loc = analysis.locus
        print(f"locus: {loc['service']} '{loc['operation']}' (span {loc['span_id']})")
    else:
        print("locus: none (no failure)")
    print(f"why: {analysis.why}")
    for p in analysis.patterns:
        print(
            f"pattern: {p['kind']} {p['count']}x {p['service']} '{p['operation']}' under span {p['parent_span_id']}"
        )
    return 0


def _run_window(args: argparse.Namespace) -> int:
    spans = load_spans(args.files)
    metrics: list[dict[str, Any]] = load_metrics([*args.files, *args.metrics])
    commits: list[dict[str, Any]] = []
    if args.changes:
        loaded = json.loads(Path(args.changes).read_text(encoding="utf-8"))
        commits = loaded if isinstance(loaded, list) else list(loaded.get("commits", []))
    window = (args.window[0], args.window[1])
    baseline = (args.baseline[0], args.baseline[1]) if args.baseline else None
    analysis = analyze(
        spans, window, baseline, metrics=metrics, commits=commits, incident_id=args.incident_id
    )
    diagnosis = analysis.diagnosis
    if args.narrate:
        from sinks.brain.narrate import NarrationConfig, apply_narrative, narrate
        from sre_space.settings import load_settings

        result = narrate(
            diagnosis,
            NarrationConfig.from_settings(load_settings()),
            known_services=analysis.report.services,
        )
        diagnosis = apply_narrative(diagnosis, result)
        if result.status != "ok":
            print(
                f"diagnose: narrative not used ({result.status}: {result.reason})", file=sys.stderr
            )
    if args.json:
        print(json.dumps(diagnosis.to_dict(), indent=2, sort_keys=True))
        return 0
    print(diagnosis.narrative or diagnosis.summary)
    if diagnosis.candidates:
        print("\nrank  score  conf  fault_class             service / operation")
        for i, c in enumerate(diagnosis.candidates, start=1):
            where = c.service + (f" '{c.operation}'" if c.operation else "")
            print(f"{i:>4}  {c.score:5.2f}  {c.confidence:4.2f}  {c.fault_class:<22}  {where}")
    return 0
