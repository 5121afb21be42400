"""Record.to_dict: the shallow path for flat records gives what `dataclasses.asdict` gives, and a
record holding records still goes through asdict."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sre_space.records import Candidate, Evidence, Record, SignalWindow
from sre_space.timeutil import ns_to_rfc3339

T0 = 1_767_571_200 * 10**9


def _reference(record: Record) -> dict[str, Any]:
    # What to_dict wrote before its shallow path: asdict, None dropped, times as RFC 3339.
    out = {k: v for k, v in asdict(record).items() if v is not None}
    for name in ("window_start", "window_end"):
        if name in out:
            out[name] = ns_to_rfc3339(out[name])
    return out


def test_a_signal_s_dict_is_asdict_s_and_owns_its_lists_and_dicts() -> None:
    sig = SignalWindow(
        kind="span",
        window_start=T0,
        window_end=T0 + 10**10,
        service="cart",
        operation="GET /cart",
        count=3,
        errors=1,
        p50_ms=1.5,
        slowest_trace_ids=["ab", "cd"],
        versions={"1.2": 3},
        flags={"new_rules": "on"},
    )
    got = sig.to_dict()
    want = _reference(sig)
    assert want["window_end"] == "2026-01-05T00:00:10.000Z"
    assert got == want and list(got) == list(want)
    got["slowest_trace_ids"].append("ef")
    got["versions"]["1.3"] = 1
    assert sig.slowest_trace_ids == ["ab", "cd"] and sig.versions == {"1.2": 3}


def test_a_record_of_records_is_converted_all_the_way_down() -> None:
    cand = Candidate(
        service="checkout",
        fault_class="memory_leak",
        score=0.9,
        confidence=0.8,
        evidence=[Evidence(kind="resource", description="memory climbs", trace_ids=["ab"])],
    )
    got = cand.to_dict()
    assert got == {k: v for k, v in asdict(cand).items() if v is not None}
    assert isinstance(got["evidence"][0], dict) and got["evidence"][0]["trace_ids"] == ["ab"]
