"""Compare two backtest folders (`python -m sre_space.harness.suite --out DIR`, or `sre-space replay
--labels`): every run's signals, anomalies, incidents and diagnoses must be byte-identical.

    python scripts/compare_runs.py BEFORE AFTER

Used to prove that a move or a refactor kept the behaviour. Exit 1 and the first differing line
of each file when they differ. Standard library only.
"""

from __future__ import annotations

import sys
from pathlib import Path

OUTPUTS = ("signals.jsonl", "anomalies.jsonl", "incidents.jsonl", "diagnoses.jsonl")


def first_difference(a: Path, b: Path) -> str | None:
    """None when the two files are byte-identical, else where and how they first differ."""
    la = a.read_bytes().splitlines()
    lb = b.read_bytes().splitlines()
    for i, (x, y) in enumerate(zip(la, lb, strict=False)):
        if x != y:
            return f"line {i + 1}:\n  - {x[:300]!r}\n  + {y[:300]!r}"
    if len(la) != len(lb):
        return f"{len(la)} lines before, {len(lb)} after"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    before, after = (Path(p) for p in argv)
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
        diff = first_difference(old, new)
        if diff is not None:
            differ += 1
            print(f"differs: {old.relative_to(before)} {diff}")
    print(f"{compared} files compared, {differ} differ")
    return 1 if differ or not compared else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
