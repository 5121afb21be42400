"""`sre-space memory search "text" [--n N] [--json]`: look up past incidents in the post-mortem index."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sinks.memory.embedding import EmbeddingConfigError
from sinks.memory.index import ChromaURLError, PostMortemIndex
from sre_space.settings import ConfigError, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `memory search` on the `memory` subcommand's parser."""
    sub = parser.add_subparsers(dest="memory_command", required=True)
    search = sub.add_parser("search", help="find past incidents similar to a text")
    search.add_argument("text", help="what to look for, e.g. 'pods OOM killed after a deploy'")
    search.add_argument("--n", type=int, default=5, help="how many results (default 5)")
    search.add_argument("--fault-class", default=None, help="only this fault class")
    search.add_argument(
        "--service", default=None, help="only incidents whose culprit is this service"
    )
    search.add_argument("--json", action="store_true", help="JSON lines instead of a table")


def _where(args: argparse.Namespace) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    if args.fault_class:
        clauses.append({"fault_class": args.fault_class})
    if args.service:
        clauses.append({"service": args.service})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def run(args: argparse.Namespace) -> int:
    """Run `memory search`; 0 on success (even with no result), 2 on a configuration error."""
    if getattr(args, "memory_command", "search") != "search":
        print(f"unknown memory command {args.memory_command!r}", file=sys.stderr)
        return 2
    if args.n <= 0:
        print("--n must be at least 1", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        index = PostMortemIndex.from_settings(settings)
    except (ConfigError, EmbeddingConfigError, ChromaURLError, ValueError) as exc:
        # EmbeddingMismatchError is a ValueError: its message names the fix.
        print(f"sre-space memory: {exc}", file=sys.stderr)
        return 2
    results = index.search(args.text, args.n, where=_where(args))
    folder = settings.paths.postmortems
    if args.json:
        for r in results:
            row = r.to_dict()
            if r.link:
                row["path"] = str(folder / r.link)
            print(json.dumps(row, sort_keys=True))
        return 0
    if not results:
        print(f"no past incident found ({index.count()} post-mortems indexed)")
        return 0
    print(f"{'sim':>5}  {'incident':<28} {'fault class':<24} {'services':<24} fix -> outcome")
    for r in results:
        fix = f"{r.action} -> {r.outcome}" if r.action else f"(none) -> {r.outcome}"
        print(
            f"{r.similarity:5.2f}  {r.incident_id:<28} {r.fault_class:<24} "
            f"{','.join(r.services):<24} {fix}"
        )
        if r.link:
            print(f"       {folder / r.link}")
    return 0
