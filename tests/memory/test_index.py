"""The ChromaDB index: idempotent upserts, scalar metadata, refusal to mix embeddings, server URLs."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from sinks.memory.embedding import HashingEmbedding, OpenAIEmbedding
from sinks.memory.index import (
    ChromaEndpoint,
    ChromaURLError,
    EmbeddingMismatchError,
    PostMortemIndex,
    chroma_client,
    parse_chroma_url,
)
from sinks.memory.postmortem import build_postmortem
from sinks.memory.records import PostMortem
from sre_space.settings import load_settings
from sre_space.timeutil import ns_to_rfc3339
from tests.memory.fake_openai import FakeOpenAI
from tests.memory.synthetic import SCENARIOS, make_case


def _pm(scenario: str, seed: int, outcome: str = "verified") -> PostMortem:
    c = make_case(scenario, seed, outcome=outcome)
    return build_postmortem(c.incident, c.anomalies, c.diagnosis, c.remediation, c.audit, c.signals)


def test_index_is_idempotent_and_metadata_is_scalar(index: PostMortemIndex) -> None:
    pm = _pm("crashloop", 1)
    index.index(pm, link="x.md")
    index.index(pm, link="x.md")
    assert index.count() == 1
    got = index._collection.get(ids=[pm.incident_id], include=["metadatas"])
    meta = got["metadatas"][0]
    assert all(isinstance(v, str | int | float | bool) for v in meta.values())
    assert meta["services"] == ",".join(pm.services)
    assert meta["fault_class"] == "crashloop" and meta["fingerprint"] == pm.fingerprint
    assert meta["action"] == "rollback_version" and meta["outcome"] == "verified"
    assert meta["opened_at"] == ns_to_rfc3339(pm.opened_at)
    assert meta["resolved_at"] == ns_to_rfc3339(pm.resolved_at)
    # A changed outcome replaces the entry instead of adding one.
    index.index(_pm("crashloop", 1, outcome="reverted"))
    assert index.count() == 1
    assert index.search("crash loop", 1)[0].outcome == "reverted"


def test_search_excludes_and_filters(index: PostMortemIndex) -> None:
    for s in SCENARIOS[:4]:
        index.index(_pm(s, 1))
    assert index.search("anything", 0) == []
    res = index.search("error spike after deploy, 5xx", 10)
    assert len(res) == 4
    ids = [r.incident_id for r in res]
    assert ids[0] not in [r.incident_id for r in index.search("error spike", 10, exclude=[ids[0]])]
    recent = index.search("x", 10, where={"resolved_ts": {"$gte": 0}})
    assert len(recent) == 4


def test_collection_survives_reopen(tmp_path: Path) -> None:
    pm = _pm("oom", 1)
    PostMortemIndex(chroma_client(tmp_path), HashingEmbedding()).index(pm)
    again = PostMortemIndex(chroma_client(tmp_path), HashingEmbedding())
    assert again.count() == 1
    assert again.search("memory leak", 1)[0].incident_id == pm.incident_id


def test_other_embedding_is_refused(
    tmp_path: Path, fake_openai: FakeOpenAI, openai_client: openai.OpenAI
) -> None:
    PostMortemIndex(chroma_client(tmp_path), HashingEmbedding(2048)).index(_pm("oom", 1))
    with pytest.raises(EmbeddingMismatchError) as err:
        PostMortemIndex(chroma_client(tmp_path), HashingEmbedding(1024))
    msg = str(err.value)
    assert "sre-space-hashing dim=2048 v1" in msg and "sre-space-hashing dim=1024 v1" in msg
    assert "SRE_MEMORY_EMBEDDING" in msg
    with pytest.raises(
        EmbeddingMismatchError, match="sre-space-openai model=text-embedding-3-small"
    ):
        PostMortemIndex(
            chroma_client(tmp_path), OpenAIEmbedding(openai_client, "text-embedding-3-small")
        )
    assert fake_openai.requests == [], "refused before any embedding was computed"
    # The original configuration still opens it.
    assert PostMortemIndex(chroma_client(tmp_path), HashingEmbedding(2048)).count() == 1


def test_collection_made_elsewhere_is_refused(tmp_path: Path) -> None:
    client = chroma_client(tmp_path)
    client.create_collection("postmortems", embedding_function=None)
    with pytest.raises(EmbeddingMismatchError, match="unknown embedding"):
        PostMortemIndex(client, HashingEmbedding())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://chroma:8000", ChromaEndpoint("chroma", 8000, False)),
        ("http://chroma", ChromaEndpoint("chroma", 8000, False)),
        ("https://chroma.example.com", ChromaEndpoint("chroma.example.com", 443, True)),
        ("https://chroma.example.com:9443/", ChromaEndpoint("chroma.example.com", 9443, True)),
        ("localhost:8123", ChromaEndpoint("localhost", 8123, False)),
        ("HTTP://127.0.0.1:1234", ChromaEndpoint("127.0.0.1", 1234, False)),
        ("http://[::1]:8000", ChromaEndpoint("::1", 8000, False)),
    ],
)
def test_chroma_url_parsing(url: str, expected: ChromaEndpoint) -> None:
    assert parse_chroma_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("ftp://chroma:8000", "scheme"),
        ("http://chroma:8000/api", "path"),
        ("http://user:pw@chroma:8000", "credentials"),
        ("http://chroma:99999", "port"),
        ("http://:8000", "no host"),
    ],
)
def test_bad_chroma_urls_are_named(url: str, message: str) -> None:
    with pytest.raises(ChromaURLError, match=message):
        parse_chroma_url(url)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[str]:
    """A real Chroma server (`chroma run`, shipped with the chromadb package) on a free port."""
    chroma = Path(__import__("sys").executable).parent / "chroma"
    port = _free_port()
    log = (tmp_path / "chroma.log").open("wb")
    proc = subprocess.Popen(
        [
            str(chroma),
            "run",
            "--path",
            str(tmp_path / "server"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"chroma run did not start: {(tmp_path / 'chroma.log').read_text()}"
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_http_client_when_sre_chroma_url_is_set(
    chroma_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SRE_CHROMA_URL", chroma_server)
    monkeypatch.setenv("SRE_STATE_DIR", str(tmp_path / "state"))
    settings = load_settings()
    idx = PostMortemIndex.from_settings(settings, HashingEmbedding())
    pm = _pm("cache_failure", 1)
    idx.index(pm)
    assert idx.search("redis cache down", 1)[0].incident_id == pm.incident_id
    assert not (tmp_path / "state" / "chroma").exists(), (
        "nothing embedded when a server is configured"
    )
    with pytest.raises(EmbeddingMismatchError, match=chroma_server):
        PostMortemIndex.from_settings(settings, HashingEmbedding(512))
