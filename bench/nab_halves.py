"""NAB standard score of two halves of the corpus, split by md5 of `category/file.csv`: a
change that helps one half only is fitted to it.

    python -m bench.nab_halves WORKDIR/score-standard.json

WORKDIR is nab_check.py's (its score JSON keeps each file's raw score and window count).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path


def halves(score: dict[str, object]) -> list[tuple[float, int]]:
    """(normalised score, windows) of half 0 and half 1: 100 (raw + w) / 2w per half."""
    acc = [[0.0, 0], [0.0, 0]]
    per_file = score["per_file"]
    assert isinstance(per_file, dict)
    for path, f in per_file.items():
        h = int(hashlib.md5(path.encode()).hexdigest(), 16) % 2
        acc[h][0] += f["raw"]
        acc[h][1] += f["windows"]
    return [(100.0 * (r + w) / (2 * w) if w else 0.0, int(w)) for r, w in acc]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    data = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    score = data[0] if isinstance(data, list) else data
    print(" ".join(f"half{i} {s:.1f} ({w} windows)" for i, (s, w) in enumerate(halves(score))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
