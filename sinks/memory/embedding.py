"""Embedding functions for the post-mortem index: offline feature hashing by default, OpenAI optional.

ChromaDB's default embedding function downloads an ONNX model on first use, which fails on a machine
without network (see NOTES "Embeddings offline"). The default here needs nothing but numpy: a signed
feature-hashing embedding over word unigrams, word bigrams and character n-grams inside words, with
sublinear term frequency and L2 normalisation. It is deterministic across processes and machines
(blake2b, never Python's salted `hash()`), so a collection built on one host is searchable from another.

Both functions implement chromadb's `EmbeddingFunction` protocol (`__call__`, `name`, `get_config`,
`build_from_config`) and are registered, so a persisted collection can name them. Their `spec` (name,
dimension, version) is what the index records in the collection metadata to refuse mixing vectors.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

HASHING_NAME = "sre-space-hashing"
OPENAI_NAME = "sre-space-openai"
# Bump when the feature extraction changes: old vectors are then incompatible with new queries.
HASHING_VERSION = 1
OPENAI_VERSION = 1
DEFAULT_DIM = 2048

# Known output sizes of OpenAI embedding models when `dimensions` is not given.
_OPENAI_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}

# Words that every post-mortem shares; they carry no signal about the kind of incident.
# fmt: off
_STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "into",
    "is", "it", "its", "no", "not", "of", "on", "or", "so", "that", "the", "then", "this", "to",
    "was", "were", "with", "within", "after", "before", "during", "over", "per", "than", "via",
))
# fmt: on
_TOKEN = re.compile(r"[a-z][a-z0-9_.\-/]*[a-z0-9]|[a-z]")


class EmbeddingConfigError(ValueError):
    """The embedding choice is invalid or incompatible with a collection; the message says the fix."""


@dataclass(frozen=True, slots=True)
class EmbeddingSpec:
    """What the vectors of a collection were made with; equal specs mean comparable vectors."""

    name: str
    dimension: int
    version: int
    model: str = ""

    def label(self) -> str:
        """A short human label, e.g. `sre-space-hashing dim=2048 v1`."""
        model = f" model={self.model}" if self.model else ""
        return f"{self.name}{model} dim={self.dimension} v{self.version}"


def _features(text: str) -> Counter[str]:
    """Word unigrams, word bigrams and character 3-5 grams of the words, namespaced by kind."""
    words = [w for w in _TOKEN.findall(text.lower()) if w not in _STOPWORDS and not _is_noise(w)]
    feats: Counter[str] = Counter()
    for w in words:
        feats["w:" + w] += 1
        # Compound identifiers (memory_leak, k8s.container.restarts) also count by their parts, so a
        # prose mention ("memory leak") meets the identifier.
        parts = [p for p in re.split(r"[_.\-/]", w) if p and p not in _STOPWORDS]
        if len(parts) > 1:
            for p in parts:
                feats["w:" + p] += 1
        padded = f"<{w}>"
        for n in (3, 4, 5):
            for i in range(len(padded) - n + 1):
                feats[f"c{n}:" + padded[i : i + n]] += 1
    for a, b in itertools.pairwise(words):
        feats[f"b:{a} {b}"] += 1
    return feats


def _is_noise(word: str) -> bool:
    """Ids and numbers (trace ids, shas, counts) differ per incident and would only add noise."""
    digits = sum(ch.isdigit() for ch in word)
    if digits == 0:
        return False
    if len(word) >= 12 and re.fullmatch(r"[0-9a-f\-]+", word):
        return True
    return digits * 2 >= len(word)


# Relative weight of each feature family: whole words and bigrams say more than character grams,
# character grams catch morphology ("leak", "leaking", "leaked").
_WEIGHTS = {"w": 1.0, "b": 0.7, "c3": 0.25, "c4": 0.3, "c5": 0.35}


def _bucket(feature: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    # The top bit is the sign: signed hashing keeps collisions from biasing similarity upwards.
    return value % dim, (1.0 if value >> 63 == 0 else -1.0)


def hashing_vector(text: str, dim: int = DEFAULT_DIM) -> np.ndarray:
    """The L2-normalised hashed n-gram vector of one text (all zeros for a text with no words)."""
    vec = np.zeros(dim, dtype=np.float64)
    for feature, tf in _features(text).items():
        kind = feature.split(":", 1)[0]
        idx, sign = _bucket(feature, dim)
        vec[idx] += sign * _WEIGHTS[kind] * (1.0 + math.log(tf))
    norm = float(np.linalg.norm(vec))
    if norm > 0:
        vec /= norm
    return vec


class _CosineEmbedding(EmbeddingFunction[Documents]):
    """What both embeddings share: compared by cosine distance (ip and l2 also accepted)."""

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]


@register_embedding_function
class HashingEmbedding(_CosineEmbedding):
    """Offline, deterministic feature-hashing embedding; needs no model and no network."""

    def __init__(self, dimension: int = DEFAULT_DIM) -> None:
        if dimension < 64:
            raise EmbeddingConfigError(f"hashing dimension {dimension} is too small; use >= 64")
        self.dimension = dimension

    def __call__(self, input: Documents) -> Embeddings:
        # An empty text would give a zero vector, which cosine distance cannot compare; give it a
        # fixed unit vector instead so it is simply dissimilar to everything.
        out: Embeddings = []
        for text in input:
            vec = hashing_vector(text, self.dimension)
            if not vec.any():
                vec[0] = 1.0
            out.append(vec.astype(np.float32))
        return out

    @staticmethod
    def name() -> str:
        return HASHING_NAME

    def get_config(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "version": HASHING_VERSION}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> HashingEmbedding:
        version = int(config.get("version", HASHING_VERSION))
        if version != HASHING_VERSION:
            raise EmbeddingConfigError(
                f"collection vectors were made with {HASHING_NAME} v{version}, this code makes "
                f"v{HASHING_VERSION}; re-index the post-mortems into a new collection"
            )
        return HashingEmbedding(int(config.get("dimension", DEFAULT_DIM)))

    @property
    def spec(self) -> EmbeddingSpec:
        """Name, dimension and version recorded in the collection."""
        return EmbeddingSpec(HASHING_NAME, self.dimension, HASHING_VERSION)


@register_embedding_function
class OpenAIEmbedding(_CosineEmbedding):
    """OpenAI (or any OpenAI-compatible endpoint) embeddings through the `openai` client."""

    def __init__(
        self, client: Any, model: str = "text-embedding-3-small", dimensions: int | None = None
    ) -> None:
        dim = dimensions or _OPENAI_DIMS.get(model)
        if dim is None:
            raise EmbeddingConfigError(
                f"unknown output size of embedding model {model!r}; set "
                "SRE_MEMORY_EMBEDDING_DIMENSIONS to the model's dimension"
            )
        self.client = client
        self.model = model
        self.dimensions = dimensions
        self.dimension = dim

    def __call__(self, input: Documents) -> Embeddings:
        kwargs: dict[str, Any] = {"model": self.model, "input": list(input)}
        if self.dimensions is not None:
            kwargs["dimensions"] = self.dimensions
        response = self.client.embeddings.create(**kwargs)
        rows = sorted(response.data, key=lambda d: d.index)
        out: Embeddings = [np.asarray(r.embedding, dtype=np.float32) for r in rows]
        for vec in out:
            if vec.shape[0] != self.dimension:
                raise EmbeddingConfigError(
                    f"{self.model} returned {vec.shape[0]} dimensions, expected {self.dimension}"
                )
        return out

    @staticmethod
    def name() -> str:
        return OPENAI_NAME

    def get_config(self) -> dict[str, Any]:
        # No key in the config: it is persisted in the collection and must never hold a secret.
        return {"model": self.model, "dimensions": self.dimensions, "version": OPENAI_VERSION}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> OpenAIEmbedding:
        import openai

        return OpenAIEmbedding(openai.OpenAI(), config["model"], config.get("dimensions"))

    @property
    def spec(self) -> EmbeddingSpec:
        """Name, model, dimension and version recorded in the collection."""
        return EmbeddingSpec(OPENAI_NAME, self.dimension, OPENAI_VERSION, self.model)


MemoryEmbedding = HashingEmbedding | OpenAIEmbedding


def embedding_from_env(
    env: dict[str, str] | None = None,
    *,
    openai_api_key: str | None = None,
    openai_base_url: str | None = None,
) -> MemoryEmbedding:
    """The configured embedding: `SRE_MEMORY_EMBEDDING` = `hashing` (default) or `openai`.

    OpenAI is used only when asked for explicitly, not merely because `OPENAI_API_KEY` is set:
    switching silently would make every existing collection unreadable (vectors are never mixed).
    `SRE_MEMORY_EMBEDDING_MODEL` and `SRE_MEMORY_EMBEDDING_DIMENSIONS` refine the choice.
    """
    env = dict(os.environ) if env is None else env
    choice = env.get("SRE_MEMORY_EMBEDDING", "hashing").strip().lower() or "hashing"
    dims_text = env.get("SRE_MEMORY_EMBEDDING_DIMENSIONS", "").strip()
    try:
        dims = int(dims_text) if dims_text else None
    except ValueError:
        raise EmbeddingConfigError(
            f"SRE_MEMORY_EMBEDDING_DIMENSIONS must be an integer, got {dims_text!r}"
        ) from None
    if choice == "hashing":
        return HashingEmbedding(dims or DEFAULT_DIM)
    if choice == "openai":
        import openai

        key = openai_api_key or env.get("OPENAI_API_KEY") or env.get("SRE_OPENAI_API_KEY")
        if not key:
            raise EmbeddingConfigError(
                "SRE_MEMORY_EMBEDDING=openai needs OPENAI_API_KEY (and OPENAI_BASE_URL for a "
                "compatible endpoint); unset SRE_MEMORY_EMBEDDING for offline embeddings"
            )
        base = openai_base_url or env.get("OPENAI_BASE_URL") or env.get("SRE_OPENAI_BASE_URL")
        client = openai.OpenAI(api_key=key, base_url=base)
        model = env.get("SRE_MEMORY_EMBEDDING_MODEL", "text-embedding-3-small")
        return OpenAIEmbedding(client, model, dims)
    raise EmbeddingConfigError(
        f"SRE_MEMORY_EMBEDDING={choice!r} is not known; use 'hashing' (offline) or 'openai'"
    )
