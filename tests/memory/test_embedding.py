"""The offline embedding: deterministic, normalised, chromadb's protocol; OpenAI through the real client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import openai
import pytest
from chromadb.utils.embedding_functions import (
    config_to_embedding_function,
    known_embedding_functions,
)

from sinks.memory.embedding import (
    EmbeddingConfigError,
    EmbeddingSpec,
    HashingEmbedding,
    OpenAIEmbedding,
    embedding_from_env,
)
from tests.memory.fake_openai import FakeOpenAI


def test_hashing_is_deterministic_across_processes() -> None:
    text = "checkout memory leak, pods OOMKilled after version 2.3.1"
    here = np.asarray(HashingEmbedding(256)([text])[0])
    code = (
        "import sys, json; from sinks.memory.embedding import HashingEmbedding;"
        f"print(json.dumps([float(x) for x in HashingEmbedding(256)([{text!r}])[0]]))"
    )
    # A new interpreter has another hash seed: blake2b, not hash(), keeps the vectors equal.
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
        cwd=Path(__file__).resolve().parents[2],
    )
    there = np.asarray(__import__("json").loads(out.stdout))
    assert np.allclose(here, there)


def test_vectors_are_unit_length_and_meaningful() -> None:
    emb = HashingEmbedding()
    a, b, c, empty = emb(
        [
            "memory leak in checkout, container OOMKilled, restarts",
            "checkout leaking memory until the OOM killer restarts pods",
            "consumer lag on topic orders keeps growing",
            "",
        ]
    )
    for v in (a, b, c, empty):
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
        assert v.shape == (2048,)
    assert float(np.dot(a, b)) > float(np.dot(a, c)) + 0.2
    # numbers and ids are noise: they do not change the vector
    x, y = emb(
        [
            "p95 up on trace 4bf92f3577b34da6a3ce929d0e0e4736 by 812",
            "p95 up on trace 0af7651916cd43dd8448eb211c80319c by 77",
        ]
    )
    assert np.allclose(x, y)


def test_chromadb_protocol_and_registration() -> None:
    emb = HashingEmbedding(512)
    assert not emb.is_legacy()
    assert HashingEmbedding.name() in known_embedding_functions
    rebuilt = config_to_embedding_function({"name": emb.name(), "config": emb.get_config()})
    assert isinstance(rebuilt, HashingEmbedding) and rebuilt.dimension == 512
    assert rebuilt.spec == EmbeddingSpec("sre-space-hashing", 512, 1)
    assert emb.default_space() == "cosine"
    with pytest.raises(EmbeddingConfigError, match="re-index"):
        HashingEmbedding.build_from_config({"dimension": 512, "version": 99})


def test_embedding_choice_from_environment() -> None:
    assert isinstance(embedding_from_env({}), HashingEmbedding)
    assert embedding_from_env({"SRE_MEMORY_EMBEDDING_DIMENSIONS": "1024"}).dimension == 1024
    with pytest.raises(EmbeddingConfigError, match="OPENAI_API_KEY"):
        embedding_from_env({"SRE_MEMORY_EMBEDDING": "openai"})
    with pytest.raises(EmbeddingConfigError, match="not known"):
        embedding_from_env({"SRE_MEMORY_EMBEDDING": "onnx"})
    # An API key alone does not switch embeddings: existing collections stay readable.
    assert isinstance(embedding_from_env({"OPENAI_API_KEY": "sk-x"}), HashingEmbedding)
    openai_emb = embedding_from_env(
        {
            "SRE_MEMORY_EMBEDDING": "openai",
            "OPENAI_API_KEY": "sk-x",
            "SRE_MEMORY_EMBEDDING_MODEL": "text-embedding-3-large",
        }
    )
    assert isinstance(openai_emb, OpenAIEmbedding)
    assert openai_emb.spec == EmbeddingSpec("sre-space-openai", 3072, 1, "text-embedding-3-large")
    assert "sk-x" not in str(openai_emb.get_config())


def test_openai_embeddings_through_the_real_client(
    fake_openai: FakeOpenAI, openai_client: openai.OpenAI
) -> None:
    emb = OpenAIEmbedding(openai_client, "text-embedding-3-small", dimensions=16)
    vecs = emb(["checkout OOM", "queue lag"])
    assert [v.shape for v in vecs] == [(16,), (16,)]
    assert not np.allclose(vecs[0], vecs[1])
    (req,) = fake_openai.requests
    assert req.path == "/v1/embeddings"
    assert req.body["model"] == "text-embedding-3-small"
    assert req.body["input"] == ["checkout OOM", "queue lag"]
    assert req.body["dimensions"] == 16
    assert req.headers["authorization"] == "Bearer sk-test-memory"
    with pytest.raises(EmbeddingConfigError, match="unknown output size"):
        OpenAIEmbedding(openai_client, "my-local-model")
