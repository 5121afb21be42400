"""JSON-lines files for replays: one part file per worker, merged and sorted when the run ends."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from sre_space.records import Record


class _Partition(StatelessSinkPartition[Record]):
    def __init__(self, path: Path) -> None:
        _drop_torn_line(path)
        self._fh: IO[str] = path.open("a", encoding="utf-8")

    def write_batch(self, items: list[Record]) -> None:
        self._fh.writelines(item.to_json() + "\n" for item in items)
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class JsonlPartsSink(DynamicSink[Record]):
    """Appends records to `<dir>/<name>.part-<worker>.jsonl`; `merge_parts` makes the final file."""

    def __init__(self, directory: str | Path, name: str) -> None:
        self.directory = Path(directory)
        self.name = name

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        self.directory.mkdir(parents=True, exist_ok=True)
        return _Partition(self.directory / f"{self.name}.part-{worker_index}.jsonl")


def _drop_torn_line(path: Path) -> None:
    """A process killed mid-write leaves a partial last line: cut it before appending again."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def merge_parts(directory: str | Path, name: str, *, sort: bool = True) -> Path:
    """Join every part into `<dir>/<name>.jsonl`.

    With `sort`, lines are ordered by window then content, so the file is the same whatever the
    workers did. Without it, each part keeps its emission order (for streams produced by one
    stateful key, such as incident lifecycles, where order is meaning). Either way a line repeated
    by an at-least-once resume after a crash is kept once.
    """
    directory = Path(directory)
    lines: list[str] = []
    for part in sorted(directory.glob(f"{name}.part-*.jsonl")):
        lines.extend(line for line in part.read_text(encoding="utf-8").splitlines() if line)
        part.unlink()
    lines = sorted(set(lines), key=_order) if sort else list(dict.fromkeys(lines))
    out = directory / f"{name}.jsonl"
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out


def _order(line: str) -> tuple[str, str]:
    # Lines are compact JSON with sorted keys; sort by window then by the whole line.
    start = line.find('"window_start":"')
    return (line[start + 16 : start + 40] if start >= 0 else "", line)
