"""Fixtures for Memory: a real embedded ChromaDB and SQLite store in tmp_path, a fake OpenAI server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from sinks.memory.embedding import HashingEmbedding
from sinks.memory.index import PostMortemIndex, chroma_client
from sinks.memory.memory import Memory
from sinks.store.sqlite import Store
from tests.memory.fake_openai import FakeOpenAI, fake_openai_server
from tests.memory.synthetic import SLOS


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "sre.db")
    yield s
    s.close()


@pytest.fixture
def index(tmp_path: Path) -> PostMortemIndex:
    return PostMortemIndex(chroma_client(tmp_path), HashingEmbedding())


@pytest.fixture
def memory(tmp_path: Path, store: Store, index: PostMortemIndex) -> Memory:
    return Memory(tmp_path, store, index, slos=SLOS)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with fake_openai_server() as server:
        yield server


@pytest.fixture
def openai_client(fake_openai: FakeOpenAI) -> openai.OpenAI:
    # The real client, pointed at the local server; no retries so failures show at once.
    return openai.OpenAI(api_key="sk-test-memory", base_url=fake_openai.base_url, max_retries=0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that talk to the local OpenAI-compatible server are marked `llm` automatically."""
    for item in items:
        if "fake_openai" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.llm)
