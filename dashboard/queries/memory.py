"""The Memory page's reads: stored post-mortems and their Markdown, the fixes' outcomes, and the
search over the post-mortem index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dashboard.queries.store import StoreReader
from sinks.memory.records import postmortem_filename
from sre_space.paths import StatePaths


def postmortem_markdown(store: StoreReader, state_dir: str | Path, incident_id: str) -> str | None:
    """The post-mortem Markdown: the file Memory wrote, else the store row's copy, else None."""
    row = store.get("postmortems", incident_id)
    try:
        path: Path | None = StatePaths(Path(state_dir)).postmortems / postmortem_filename(
            incident_id
        )
    except ValueError:
        path = None
    if path is not None and path.exists():
        return path.read_text(encoding="utf-8")
    if row is not None and row.get("markdown"):
        return str(row["markdown"])
    return None


def postmortems(store: StoreReader) -> list[dict[str, Any]]:
    """Every stored post-mortem, newest first (the store's copy; the index is for search)."""
    rows = store.query("postmortems", newest_first=True)
    return [
        {
            "incident_id": r.get("incident_id", ""),
            "title": r.get("title", ""),
            "fault_class": r.get("fault_class", ""),
            "culprit": r.get("culprit", ""),
            "services": list(r.get("services") or []),
            "action": r.get("action", ""),
            "outcome": r.get("outcome", ""),
            "fingerprint": r.get("fingerprint", ""),
            "resolved_at": r.get("resolved_at", ""),
            "duration_s": r.get("duration_s"),
            "failed_requests": r.get("failed_requests"),
        }
        for r in rows
    ]


def fix_outcomes(store: StoreReader) -> list[dict[str, Any]]:
    """How each automated fix fared per fingerprint (Memory's own statistics)."""
    from sinks.memory.outcomes import OutcomeTracker

    fingerprints = sorted({str(r.get("fingerprint", "")) for r in store.query("postmortems")})
    tracker = OutcomeTracker(store)  # type: ignore[arg-type]
    out = []
    for fp in fingerprints:
        for o in tracker.outcomes(fp):
            out.append(
                {
                    "fingerprint": fp,
                    "action": o.action,
                    "attempts": o.attempts,
                    "worked": o.worked,
                    "failed": o.failed,
                    "escalated": o.escalated,
                    "pending": o.pending,
                    "success_rate": o.success_rate,
                    "verdict": "preferred" if o.preferred else ("avoided" if o.avoided else "—"),
                    "last_incident": o.last_incident,
                }
            )
    return out


def memory_index(state_dir: str | Path) -> Any | None:
    """The post-mortem index (`PostMortemIndex`) of the state folder, or SRE_CHROMA_URL's;
    None when there is no embedded index yet (opening one would create it)."""
    from sre_space.settings import Settings

    settings = Settings(state_dir=Path(state_dir))
    if not settings.chroma_url and not settings.paths.chroma.exists():
        return None
    from sinks.memory.index import PostMortemIndex

    return PostMortemIndex.from_settings(settings)


def search_memory(
    state_dir: str | Path, text: str, n: int = 5, *, index: Any | None = None
) -> list[dict[str, Any]]:
    """Past incidents similar to `text`, best first (empty when there is no index)."""
    index = index if index is not None else memory_index(state_dir)
    if index is None:
        return []
    return [r.to_dict() for r in index.search(text, n)]
