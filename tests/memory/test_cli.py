"""`sre-space memory search`: the subcommand's add_arguments/run, against a real state folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sinks.memory import cli
from sinks.memory.embedding import HashingEmbedding
from sinks.memory.index import PostMortemIndex, chroma_client
from sinks.memory.memory import Memory
from sinks.store.sqlite import Store
from tests.memory.synthetic import SCENARIOS, make_case


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sre-space memory")
    cli.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "state"
    store = Store(root / "sre.db")
    memory = Memory(root, store, PostMortemIndex(chroma_client(root), HashingEmbedding()))
    for s in SCENARIOS:
        c = make_case(s, 1)
        memory.learn(c.incident, c.anomalies, c.diagnosis, c.remediation, c.audit, c.signals)
    store.close()
    monkeypatch.setenv("SRE_STATE_DIR", str(root))
    for var in ("SRE_CHROMA_URL", "SRE_MEMORY_EMBEDDING", "SRE_MEMORY_EMBEDDING_DIMENSIONS"):
        monkeypatch.delenv(var, raising=False)
    return root


def test_search_table(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(_parse(["search", "consumer lag growing on the orders topic", "--n", "2"])) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["sim", "incident", "fault"]
    assert "queue_lag" in out[1] and "scale_replicas -> verified" in out[1]
    assert out[2].strip() == str(state / "postmortems" / "inc-queue-lag-0001.md")
    assert sum(1 for ln in out if ln.startswith(" ") and ln.strip().endswith(".md")) == 2


def test_search_json_and_filters(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.run(_parse(["search", "slow", "--n", "3", "--json", "--fault-class", "db_latency"]))
        == 0
    )
    rows = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [r["fault_class"] for r in rows] == ["db_latency"]
    assert Path(rows[0]["path"]).is_file()
    assert {"incident_id", "similarity", "outcome", "action", "services"} <= rows[0].keys()


def test_empty_memory_and_bad_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SRE_STATE_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("SRE_CHROMA_URL", raising=False)
    monkeypatch.delenv("SRE_MEMORY_EMBEDDING", raising=False)
    assert cli.run(_parse(["search", "anything"])) == 0
    assert "no past incident found (0 post-mortems indexed)" in capsys.readouterr().out
    monkeypatch.setenv("SRE_MEMORY_EMBEDDING_DIMENSIONS", "512")
    assert cli.run(_parse(["search", "anything"])) == 2
    assert "cannot be compared" in capsys.readouterr().err
    monkeypatch.delenv("SRE_MEMORY_EMBEDDING_DIMENSIONS")
    monkeypatch.setenv("SRE_CHROMA_URL", "http://chroma:8000/api")
    assert cli.run(_parse(["search", "anything"])) == 2
    assert "path or query" in capsys.readouterr().err
