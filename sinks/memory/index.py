"""The post-mortem index: one ChromaDB collection, embedded by default, a Chroma server when configured.

`PersistentClient(path=<state>/chroma)` unless `SRE_CHROMA_URL` is set, then `HttpClient` with the
host, port and TLS taken from the URL. Telemetry is off (no network calls we did not ask for).

A post-mortem is indexed by its incident id (upsert, so re-indexing is idempotent). The vector is made
from the post-mortem's digest (services, signals, fault class, evidence, fix), not from the whole
Markdown, whose boilerplate is the same for every incident; the Markdown is stored as the document.

The collection records which embedding made its vectors (name, model, dimension, version). Opening it
with another embedding is refused with `EmbeddingMismatchError`: mixed vectors would silently return
nonsense neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import chromadb
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import NotFoundError

from sinks.memory.embedding import EmbeddingSpec, MemoryEmbedding, embedding_from_env
from sinks.memory.records import POSTMORTEM_SCHEMA, PostMortem, SimilarIncident
from sre_space.paths import DEFAULT_STATE, StatePaths
from sre_space.settings import Settings
from sre_space.timeutil import NS_PER_S, ns_to_rfc3339, rfc3339_to_ns

COLLECTION = "postmortems"
CHROMA_DEFAULT_PORT = 8000


class EmbeddingMismatchError(ValueError):
    """The collection's vectors were made by another embedding than the one configured."""


class ChromaURLError(ValueError):
    """SRE_CHROMA_URL cannot be turned into a Chroma server address."""


@dataclass(frozen=True, slots=True)
class ChromaEndpoint:
    """Where a Chroma server listens."""

    host: str
    port: int
    ssl: bool


def parse_chroma_url(url: str) -> ChromaEndpoint:
    """`http://host:8000`, `https://host` (port 443) or `host:port` to a ChromaEndpoint.

    Without a port, `https` means 443 and `http` means Chroma's own default 8000 (what `chroma run`
    listens on), not 80. A path, query or credentials in the URL are refused rather than ignored:
    `HttpClient` cannot use them and silently dropping them would hide a mistake.
    """
    text = url.strip()
    if not text:
        raise ChromaURLError("SRE_CHROMA_URL is empty; unset it to use the embedded ChromaDB")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ChromaURLError(
            f"SRE_CHROMA_URL={url!r}: scheme must be http or https, got {scheme!r}"
        )
    if not parts.hostname:
        raise ChromaURLError(
            f"SRE_CHROMA_URL={url!r} has no host; expected e.g. http://chroma:8000"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ChromaURLError(
            f"SRE_CHROMA_URL={url!r}: a path or query is not supported by Chroma's HttpClient; "
            "give only scheme, host and port"
        )
    if parts.username or parts.password:
        raise ChromaURLError(f"SRE_CHROMA_URL={url!r}: credentials in the URL are not supported")
    try:
        port = parts.port
    except ValueError:
        raise ChromaURLError(
            f"SRE_CHROMA_URL={url!r}: the port is not a number in 1..65535"
        ) from None
    ssl = scheme == "https"
    if port is None:
        port = 443 if ssl else CHROMA_DEFAULT_PORT
    return ChromaEndpoint(host=parts.hostname, port=port, ssl=ssl)


def chroma_client(state_dir: str | Path | None = None, chroma_url: str | None = None) -> Any:
    """A Chroma client: `HttpClient` when `chroma_url` is given, else embedded under `state_dir`."""
    settings = ChromaSettings(anonymized_telemetry=False)
    if chroma_url:
        ep = parse_chroma_url(chroma_url)
        return chromadb.HttpClient(host=ep.host, port=ep.port, ssl=ep.ssl, settings=settings)
    path = StatePaths(Path(state_dir) if state_dir is not None else DEFAULT_STATE).chroma
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=settings)


def _spec_metadata(spec: EmbeddingSpec) -> dict[str, str | int]:
    return {
        "embedding_name": spec.name,
        "embedding_model": spec.model,
        "embedding_dimension": spec.dimension,
        "embedding_version": spec.version,
        "schema": POSTMORTEM_SCHEMA,
    }


def _spec_from_metadata(meta: dict[str, Any] | None) -> EmbeddingSpec | None:
    if not meta or "embedding_name" not in meta:
        return None
    return EmbeddingSpec(
        name=str(meta["embedding_name"]),
        dimension=int(meta.get("embedding_dimension", 0)),
        version=int(meta.get("embedding_version", 0)),
        model=str(meta.get("embedding_model", "")),
    )


def _metadata(pm: PostMortem, link: str) -> dict[str, str | int | float | bool]:
    # Chroma metadata values must be scalars: lists are joined, times also kept as epoch seconds so
    # that `where` can filter ranges ({"resolved_ts": {"$gte": ...}}).
    return {
        "incident_id": pm.incident_id,
        "services": ",".join(pm.services),
        "service": pm.culprit,
        "fault_class": pm.fault_class,
        "fingerprint": pm.fingerprint,
        "action": pm.action,
        "outcome": pm.outcome,
        "severity": pm.severity,
        "title": pm.title,
        "opened_at": ns_to_rfc3339(pm.opened_at),
        "resolved_at": ns_to_rfc3339(pm.resolved_at),
        "opened_ts": pm.opened_at // NS_PER_S,
        "resolved_ts": pm.resolved_at // NS_PER_S,
        "link": link,
        "schema": pm.schema,
    }


class PostMortemIndex:
    """The `postmortems` collection: index post-mortems, search similar ones."""

    def __init__(
        self,
        client: Any,
        embedding: MemoryEmbedding | None = None,
        *,
        collection: str = COLLECTION,
        where: str = "",
    ) -> None:
        self.client = client
        self.embedding = embedding if embedding is not None else embedding_from_env()
        self.name = collection
        self._where = where or collection
        self._collection = self._open()

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, embedding: MemoryEmbedding | None = None
    ) -> PostMortemIndex:
        """The index the settings describe (state folder or SRE_CHROMA_URL)."""
        settings = settings or Settings()
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        emb = embedding or embedding_from_env(
            openai_api_key=key, openai_base_url=settings.openai_base_url
        )
        client = chroma_client(settings.state_dir, settings.chroma_url)
        where = settings.chroma_url or str(settings.paths.chroma)
        return cls(client, emb, where=where)

    def _open(self) -> Any:
        spec = self.embedding.spec
        try:
            existing = self.client.get_collection(self.name, embedding_function=None)
        except NotFoundError:
            existing = None
        if existing is not None:
            have = _spec_from_metadata(existing.metadata)
            if have != spec:
                have_label = have.label() if have else "an unknown embedding (no record)"
                msg = (
                    f"ChromaDB collection {self.name!r} at {self._where} holds vectors made with "
                    f"{have_label}, but this process is configured for {spec.label()}. Vectors "
                    "of different embeddings cannot be compared. Use the embedding the collection "
                    "was built with (SRE_MEMORY_EMBEDDING, SRE_MEMORY_EMBEDDING_MODEL, "
                    "SRE_MEMORY_EMBEDDING_DIMENSIONS), or re-index the post-mortems into a new "
                    "collection or state folder."
                )
                raise EmbeddingMismatchError(msg)
        return self.client.get_or_create_collection(
            self.name,
            embedding_function=self.embedding,
            metadata=_spec_metadata(spec),
            configuration={"hnsw": {"space": "cosine"}},
        )

    def count(self) -> int:
        """How many post-mortems are indexed."""
        return int(self._collection.count())

    def index(self, pm: PostMortem, *, link: str = "") -> None:
        """Index (or re-index) one post-mortem under its incident id."""
        vector = self.embedding([pm.digest])[0]
        self._collection.upsert(
            ids=[pm.incident_id],
            embeddings=[vector],
            documents=[pm.markdown],
            metadatas=[_metadata(pm, link)],
        )

    def search(
        self,
        text: str,
        n: int = 5,
        *,
        where: dict[str, Any] | None = None,
        exclude: Sequence[str] = (),
    ) -> list[SimilarIncident]:
        """The `n` post-mortems most similar to `text`, best first, with similarity in [-1, 1].

        `where` is a Chroma metadata filter (e.g. `{"fault_class": "memory_leak"}`); `exclude` drops
        incident ids (the incident being written must not find itself).
        """
        total = self.count()
        if total == 0 or n <= 0:
            return []
        k = min(total, n + len(exclude))
        vector = self.embedding.embed_query([text])[0]
        res = self._collection.query(
            query_embeddings=[vector],
            n_results=k,
            where=where or None,
            include=["metadatas", "distances"],
        )
        out = []
        metas = (res.get("metadatas") or [[]])[0]
        dists = (res.get("distances") or [[]])[0]
        for rid, meta, dist in zip(res["ids"][0], metas, dists, strict=True):
            if rid in exclude:
                continue
            m = dict(meta or {})
            out.append(
                SimilarIncident(
                    incident_id=rid,
                    # cosine space: distance = 1 - cosine similarity
                    similarity=round(1.0 - float(dist), 4),
                    fault_class=str(m.get("fault_class", "")),
                    service=str(m.get("service", "")),
                    services=[s for s in str(m.get("services", "")).split(",") if s],
                    fingerprint=str(m.get("fingerprint", "")),
                    action=str(m.get("action", "")),
                    outcome=str(m.get("outcome", "none")),
                    resolved_at=rfc3339_to_ns(str(m["resolved_at"]))
                    if m.get("resolved_at")
                    else None,
                    title=str(m.get("title", "")),
                    link=str(m.get("link", "")),
                )
            )
        return out[:n]

    def get_markdown(self, incident_id: str) -> str | None:
        """The stored Markdown of one indexed post-mortem, or None."""
        res = self._collection.get(ids=[incident_id], include=["documents"])
        docs = res.get("documents") or []
        return docs[0] if docs else None
