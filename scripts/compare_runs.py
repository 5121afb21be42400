"""Compare two backtest folders (`python -m sre_space.harness.suite --out DIR`, or `sre-space replay
--labels`): every run's signals, anomalies, incidents and diagnoses must be byte-identical.

    python scripts/compare_runs.py [--map-commits] BEFORE AFTER

Used to prove that a move or a refactor kept the behaviour. Exit 1 and the first differing line
of each file when they differ. Standard library only.

`--map-commits`: a change to the GitOps repository's files changes every commit id, so before
comparing, BEFORE's commit ids (full and 12-character) are replaced by AFTER's, paired by the
order of the runs' labels (`<run>.pb.labels.json`, `changes`); the pairs must have the same
subjects and times, or the runs differ.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUTPUTS = ("signals.jsonl", "anomalies.jsonl", "incidents.jsonl", "diagnoses.jsonl")


def commit_map(before: Path, after: Path) -> dict[bytes, bytes] | str:
    """BEFORE's commit ids -> AFTER's for every run's labels; a message when they do not pair."""
    out: dict[bytes, bytes] = {}
    for old in sorted(before.glob("*.labels.json")):
        new = after / old.name
        if not new.exists():
            return f"missing after: {new}"
        a = json.loads(old.read_text(encoding="utf-8")).get("changes", [])
        b = json.loads(new.read_text(encoding="utf-8")).get("changes", [])
        keys = [(c["subject"], c["time"]) for c in a]
        if keys != [(c["subject"], c["time"]) for c in b]:
            return f"{old.name}: the commits differ in subject or time"
        for x, y in zip(a, b, strict=True):
            out[x["commit"].encode()] = y["commit"].encode()
            out[x["commit"][:12].encode()] = y["commit"][:12].encode()
    return out


def first_difference(a: Path, b: Path, commits: dict[bytes, bytes] | None = None) -> str | None:
    """None when the two files are byte-identical, else where and how they first differ."""
    data = a.read_bytes()
    # full ids first: a 12-character prefix is part of its full id
    for old, new in sorted((commits or {}).items(), key=lambda kv: -len(kv[0])):
        data = data.replace(old, new)
    la = data.splitlines()
    lb = b.read_bytes().splitlines()
    for i, (x, y) in enumerate(zip(la, lb, strict=False)):
        if x != y:
            return f"line {i + 1}:\n  - {x[:300]!r}\n  + {y[:300]!r}"
    if len(la) != len(lb):
        return f"{len(la)} lines before, {len(lb)} after"
    return None


def main(argv: list[str]) -> int:
    map_commits = "--map-commits" in argv
    paths = [a for a in argv if a != "--map-commits"]
    if len(paths) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    before, after = (Path(p) for p in paths)
    commits: dict[bytes, bytes] | None = None
    if map_commits:
        mapped = commit_map(before, after)
        if isinstance(mapped, str):
            print(mapped)
            return 1
        commits = mapped
        print(f"{len(mapped) // 2} commit ids mapped")
    compared, differ = 0, 0
    for old in sorted(before.rglob("*.jsonl")):
        if old.name not in OUTPUTS:
            continue
        new = after / old.relative_to(before)
        if not new.exists():
            print(f"missing after: {new}")
            differ += 1
            continue
        compared += 1
        diff = first_difference(old, new, commits)
        if diff is not None:
            differ += 1
            print(f"differs: {old.relative_to(before)} {diff}")
    print(f"{compared} files compared, {differ} differ")
    return 1 if differ or not compared else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
