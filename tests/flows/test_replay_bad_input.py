"""Bad recordings as a new user meets them: a missing file, a truncated `.gz`, a corrupt line."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import pytest

from bench.workload import generate, iter_json_lines
from flows.replay import replay
from operators.otlp import iter_recording
from sre_space.cli import main as cli_main
from sre_space.records import SignalWindow, read_jsonl
from sre_space.settings import load_pipeline_config

CONFIG = load_pipeline_config()


def _lines(n_spans: int, per_request: int, seed: int = 4) -> list[str]:
    requests, _ = generate(n_spans, seed=seed, spans_per_request=per_request)
    return list(iter_json_lines(requests))


def _spans(files: dict[str, Path]) -> int:
    signals = read_jsonl(str(files["signals"]), SignalWindow)
    return sum(s.count for s in signals if s.kind == "span")


def _dead(files: dict[str, Path]) -> list[dict[str, object]]:
    return [json.loads(line) for line in files["deadletters"].read_text().splitlines()]


def test_a_missing_file_is_a_one_line_error_before_the_flow_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    code = cli_main(["replay", str(missing), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [f"sre-space replay: error: no such recording: {missing}"]
    assert not (tmp_path / "out").exists()


def _span_count(line: bytes) -> int:
    doc = json.loads(line)
    return sum(len(ss["spans"]) for rs in doc["resourceSpans"] for ss in rs["scopeSpans"])


def test_a_truncated_gz_replays_what_it_can_and_dead_letters_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "".join(line + "\n" for line in _lines(2_000, 100)).encode()
    whole = gzip.compress(text)
    path = tmp_path / "rec.jsonl.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    *good, last = iter_recording(path)
    assert 0 < len(good) < 20 and all(m.error is None for m in good)
    # the rest starts right after the last whole line read
    assert last.byte_offset == text.index(good[-1].value) + len(good[-1].value) + 1

    out = tmp_path / "out"
    assert cli_main(["replay", str(path), "--out", str(out), "--no-progress"]) == 0
    files = {name: out / f"{name}.jsonl" for name in ("signals", "deadletters")}
    assert _spans(files) == sum(_span_count(m.value) for m in good)
    [dead] = _dead(files)
    assert dead["offset"] == len(good) and dead["byte_offset"] == last.byte_offset
    assert f"unreadable from decompressed byte {last.byte_offset}" in str(dead["reason"])
    assert "replay: warning: 1 record(s) could not be read or decoded" in capsys.readouterr().err


def test_a_file_that_is_not_gzip_at_all_is_one_dead_letter_at_byte_zero(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl.gz"
    path.write_text("".join(line + "\n" for line in _lines(300, 100)))
    files = replay([path], tmp_path / "out", CONFIG)
    [dead] = _dead(files)
    assert (dead["offset"], dead["byte_offset"]) == (0, 0)
    assert "gzip" in str(dead["reason"])
    assert _spans(files) == 0


def test_a_corrupt_line_in_the_middle_is_dead_lettered_with_its_byte_offset(
    tmp_path: Path,
) -> None:
    lines = _lines(1_000, 100)
    lines[4] = lines[4][: len(lines[4]) // 2]  # cut mid-record, as a crashed writer leaves it
    text = "".join(line + "\n" for line in lines)
    path = tmp_path / "rec.jsonl"
    path.write_text(text)
    files = replay([path], tmp_path / "out", CONFIG)
    [dead] = _dead(files)
    assert (dead["offset"], dead["byte_offset"]) == (4, text.index(lines[4]))
    assert _spans(files) == sum(
        _span_count(line.encode()) for i, line in enumerate(lines) if i != 4
    )


def test_a_torn_proto_record_is_dead_lettered_with_its_byte_offset(tmp_path: Path) -> None:
    requests, _ = generate(600, seed=4, spans_per_request=200)
    data = b"".join(struct.pack(">I", len(r)) + r for r in requests)
    path = tmp_path / "rec.bin"
    path.write_bytes(data[:-10])
    *good, last = iter_recording(path)
    assert [m.value for m in good] == requests[:-1]
    assert last.byte_offset == len(data) - len(requests[-1]) - 4
    size = len(requests[-1])
    assert last.error == f"torn record: its prefix says {size} bytes, {size - 10} remain"
