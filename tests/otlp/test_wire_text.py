"""The text columns the compiled decoder writes in its one walk (`DecodeLimits.text_keys`): the
same as span_columns writes in a walk of its own, and as the protobuf (upb) decoder's, on spans
made to hit every case; other keys read later still get theirs; the archive is unchanged."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.otlp_encode import SpanSpec, trace_request
from bench.workload import shop_requests
from flows.build import decode_limits
from flows.replay import replay
from operators.otlp import DecodeLimits
from operators.otlp.proto_traces import decode_trace_upb
from operators.otlp.wire import _wire, decode_trace_wire
from sinks.archive.columns import span_record_batch
from sinks.archive.reader import scan_spans
from sre_space.settings import load_pipeline_config
from tests.otlp.test_wire import LIMITS, assert_same, assert_text_in_walk, ld, tag, texts, varint

# AnyValue encodings: the text column's cases
STRING = ld(1, b"x")
TRUE = tag(2, 0) + varint(1)
INT = tag(3, 0) + varint(-5)
DOUBLE = tag(4, 1) + struct.pack("<d", 1.5)
ARRAY = ld(5, ld(1, ld(1, b"q")))
KVLIST = ld(6, ld(1, ld(1, b"k") + ld(2, ld(1, b"v"))))
BYTES = ld(7, b"\x00\xff")
STRING_INDEX = tag(8, 0) + varint(3)
WRONG_WIRE_TYPE = tag(5, 0) + varint(3)  # an array field as a varint: kept as unknown


def kv(key: bytes | None, *values: bytes, field: int = 9) -> bytes:
    """A KeyValue (key None: absent) whose AnyValue fields are `values` (several merge)."""
    body = b"" if key is None else ld(1, key)
    return ld(field, body + b"".join(ld(2, v) for v in values))


def event(name: bytes, time_ns: int, *attrs: bytes) -> bytes:
    return ld(11, tag(1, 1) + struct.pack("<Q", time_ns) + ld(2, name) + b"".join(attrs))


def span(span_id: int, *fields: bytes) -> bytes:
    head = ld(1, b"\x01" * 16) + ld(2, bytes([span_id]) * 8) + ld(5, b"op") + tag(6, 0) + b"\x02"
    return ld(2, head + b"".join(fields))


def request(*spans: bytes) -> bytes:
    name = kv(b"service.name", ld(1, b"cart"), field=1)
    version = kv(b"service.version", ld(1, b"1.0"), field=1)
    return ld(1, ld(1, name + version) + ld(2, b"".join(spans)))


KEYS = ("a", "b", "", "http.route", "k8s.pod.name", "rpc.grpc.status_code", "service.version")
ODD_SPANS = request(
    # a selected key repeated (the last wins), one without a value, two AnyValues in one
    # KeyValue (the text reads the last alone), and non-string values
    span(
        2,
        kv(b"a", STRING),
        kv(b"a", INT),
        kv(b"b"),
        kv(b"http.route", STRING, INT),
        kv(b"k8s.pod.name", TRUE),
        kv(b"rpc.grpc.status_code", DOUBLE),
        event(b"e", 7, kv(b"z", ld(1, b"1"), field=3), kv(b"a", INT, field=3)),
        event(b'q"\\\n\x01\xc3\xa9', 2**64 - 1),
    ),
    # the values Python writes, a key-less attribute, an event Python writes
    span(
        3,
        kv(b"a", DOUBLE),
        kv(b"b", ARRAY),
        kv(b"http.route", KVLIST),
        kv(b"k8s.pod.name", BYTES),
        kv(None, STRING),
        event(b"d", 1, kv(b"d", DOUBLE, field=3)),
    ),
    span(4),  # nothing: the resource's value, else ""
    # an empty value, an unknown AnyValue field, a string index then an int, and 130 attributes
    # on an event (over the compiled writer's 128)
    span(
        5,
        kv(b"a", b""),
        kv(b"b", WRONG_WIRE_TYPE),
        kv(b"http.route", STRING_INDEX),
        kv(b"http.route", INT),
        event(b"many", 3, *(kv(b"k%d" % i, STRING, field=3) for i in range(130))),
        event(b"after", 4),
    ),
)


def test_odd_spans_give_the_text_span_columns_and_upb_give() -> None:
    assert_same(ODD_SPANS)  # TEXT_KEYS of the generated requests
    assert_text_in_walk(ODD_SPANS, KEYS)
    assert_text_in_walk(ODD_SPANS, ("a", "a", "missing"))  # a key twice: its first column
    batch = decode_trace_wire(ODD_SPANS, DecodeLimits(text_keys=KEYS))
    columns = texts(batch.text_columns(KEYS))
    assert columns == texts(decode_trace_upb(ODD_SPANS, LIMITS).text_columns(KEYS))
    a, b, keyless, route, pod, rpc, version, events = columns
    assert a == ["-5", "1.5", "", ""]
    assert b == ["", "['q']", "", ""]
    assert keyless == ["", "x", "", ""]
    assert route == ["-5", "{'k': 'v'}", "", "-5"]
    assert pod == ["True", "b'\\x00\\xff'", "", ""]
    assert rpc == ["1.5", "", "", ""]
    assert version == ["1.0"] * 4
    assert events[0].startswith('[{"attributes":{"a":-5,"z":"1"},"name":"e","time_ns":7}')
    assert events[2] == ""


EVENT_VALUES = [STRING, TRUE, INT, DOUBLE, ARRAY, KVLIST, STRING_INDEX, WRONG_WIRE_TYPE, b"", BYTES]


def attributes(values: list[bytes]) -> st.SearchStrategy[list[Any]]:
    """KeyValues: a key (None: absent) and its AnyValue fields (none: no value; several merge)."""
    key = st.sampled_from([b"a", b"b", b"", None])
    return st.lists(st.tuples(key, st.lists(st.sampled_from(values), max_size=2)), max_size=5)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(attributes(EVENT_VALUES), st.lists(attributes(EVENT_VALUES), max_size=2)),
        min_size=1,
        max_size=4,
    )
)
def test_repeated_keys_and_any_values_give_the_same_text(
    spans: list[tuple[list[Any], list[list[Any]]]],
) -> None:
    data = request(
        *(
            span(
                i + 2,
                *(kv(key, *values) for key, values in attrs),
                *(event(b"e", i, *(kv(k, *v, field=3) for k, v in ev)) for ev in events),
            )
            for i, (attrs, events) in enumerate(spans)
        )
    )
    assert_same(data)
    assert_text_in_walk(data, KEYS)


def test_an_event_attribute_of_bytes_is_archived_in_base64() -> None:
    # json.dumps refused bytes: one such event failed the archive's whole batch, on either decoder
    data = request(span(2, event(b"upload", 9, kv(b"blob", BYTES, field=3))))
    for batch in (
        decode_trace_wire(data, DecodeLimits(text_keys=KEYS)),
        decode_trace_upb(data, LIMITS),
    ):
        assert texts(batch.text_columns(KEYS))[-1] == [
            '[{"attributes":{"blob":"AP8="},"name":"upload","time_ns":9}]'
        ]
        assert span_record_batch(batch, KEYS).column("events").to_pylist() == [
            '[{"attributes":{"blob":"AP8="},"name":"upload","time_ns":9}]'
        ]


def test_other_keys_are_read_in_a_walk_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    walks = _count_walks(monkeypatch)
    batch = decode_trace_wire(ODD_SPANS, DecodeLimits(text_keys=KEYS))
    upb = decode_trace_upb(ODD_SPANS, LIMITS)
    assert texts(batch.text_columns(KEYS)) == texts(upb.text_columns(KEYS))
    assert walks == []  # the decoding walk wrote them
    for keys in (KEYS[::-1], KEYS[:2], ()):
        assert texts(batch.text_columns(keys)) == texts(upb.text_columns(keys))
    assert walks == [KEYS[::-1], KEYS[:2], ()]
    plain = decode_trace_wire(ODD_SPANS, LIMITS)  # no text keys: every read walks
    assert texts(plain.text_columns(KEYS)) == texts(upb.text_columns(KEYS))
    assert walks[-1] == KEYS


def _count_walks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The keys of each span_columns call from now on."""
    walks: list[tuple[str, ...]] = []
    real = _wire.span_columns

    def span_columns(data: bytes, offsets: Any, keys: tuple[str, ...]) -> Any:
        walks.append(keys)
        return real(data, offsets, keys)

    monkeypatch.setattr(_wire, "span_columns", span_columns)
    return walks


def test_more_keys_than_the_walk_takes_are_read_as_before() -> None:
    keys = tuple(f"k{i}" for i in range(_wire.MAX_KEYS + 1))
    batch = decode_trace_wire(ODD_SPANS, DecodeLimits(text_keys=keys))
    with pytest.raises(ValueError, match="at most 64 selected attributes"):
        batch.text_columns(keys)
    with pytest.raises(TypeError):
        _wire.decode_spans(ODD_SPANS, ["a"])  # a tuple or None


def test_the_archive_writes_the_same_parquet(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_pipeline_config()
    selected = tuple(config.signals.selected_attributes)
    limits = decode_limits(config, archived=True)
    assert limits.text_keys == selected and decode_limits(config, archived=False).text_keys is None
    requests = shop_requests(1_500, seed=3, spans_per_request=300)
    walked = [decode_trace_wire(r, limits) for r in requests]
    plain = [decode_trace_wire(r, LIMITS) for r in requests]
    assert any(b.events(i) for b in walked for i in range(len(b)))
    walks = _count_walks(monkeypatch)
    for n in (1, len(requests)):
        walks.clear()
        one = span_record_batch(walked[:n], selected)
        assert walks == []
        two = span_record_batch(plain[:n], selected)
        assert walks == [selected] * n
        assert one.equals(two)
        assert _parquet(one) == _parquet(two)


def test_a_replay_archives_in_the_decoding_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = shop_requests(600, seed=4, spans_per_request=200)
    path = tmp_path / "rec.proto"  # length-prefixed protobuf: the compiled wire decoder's input
    path.write_bytes(b"".join(struct.pack(">I", len(r)) + r for r in requests))
    walks = _count_walks(monkeypatch)
    replay([path], tmp_path / "out", load_pipeline_config(), archive=tmp_path / "spans")
    assert walks == []
    ends = np.concatenate([decode_trace_wire(r, LIMITS).end_ns for r in requests])
    frame = scan_spans(tmp_path / "spans", int(ends.min()), int(ends.max()) + 1).collect()
    assert frame.height == len(ends)
    assert frame["events"].str.len_bytes().max() > 0


def _parquet(batch: pa.RecordBatch) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.Table.from_batches([batch]), out)
    return out.getvalue()


def test_the_events_json_needs_no_keys() -> None:
    cols = _wire.decode_spans(ODD_SPANS, ())
    offsets = np.frombuffer(cols["span_offsets"], dtype=np.int64)
    assert cols["text_columns"] == _wire.span_columns(ODD_SPANS, offsets, ())
    assert "text_columns" not in _wire.decode_spans(ODD_SPANS)
    assert "text_columns" not in _wire.decode_spans(ODD_SPANS, None)


def test_event_json_is_written_as_json_dumps_writes_it() -> None:
    # keys out of order and repeated (the last wins), escapes, a character outside the BMP, a
    # key-less attribute, and a double that the compiled writer leaves to Python
    req = trace_request(
        [({"service.name": "svc"}, [SpanSpec(b"\x01" * 16, b"\x02" * 8, "op", 1, 2)])]
    )
    span = req.resource_spans[0].scope_spans[0].spans[0]
    for name, pairs in (
        ('q"\\\n\x01é😀', [("z", "1"), ("a", -5), ("z", "last"), ("", True)]),
        ("", []),
    ):
        event = span.events.add(name=name, time_unix_nano=2**64 - 1)
        for key, value in pairs:
            kv = event.attributes.add(key=key)
            if isinstance(value, bool):
                kv.value.bool_value = value
            elif isinstance(value, int):
                kv.value.int_value = value
            else:
                kv.value.string_value = value
    second = req.resource_spans[0].scope_spans[0].spans.add()
    second.CopyFrom(span)
    second.events[1].attributes.add(key="d").value.double_value = 0.1
    data = req.SerializeToString()
    compiled = texts(decode_trace_wire(data, LIMITS).text_columns(()))
    assert compiled == texts(decode_trace_upb(data, LIMITS).text_columns(()))
    assert json.loads(compiled[-1][0])[0]["attributes"] == {"": True, "a": -5, "z": "last"}
    assert json.loads(compiled[-1][1])[1]["attributes"] == {"d": 0.1}


def test_events_read_the_same_with_the_text_columns_as_without() -> None:
    # With the text columns, a span whose events' state is 0 is answered without parsing it.
    plain = decode_trace_wire(ODD_SPANS, LIMITS)
    texted = decode_trace_wire(ODD_SPANS, DecodeLimits(text_keys=KEYS))
    expect = [plain.events(i) for i in range(len(plain))]
    assert [texted.events(i) for i in range(len(texted))] == expect
    assert [bool(e) for e in expect] == [True, True, False, True]  # span 4 has none
