"""The span archive: what the flow writes is what the Brain reads back, sampled but never losing errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from bench.otlp_encode import SpanSpec, trace_request
from bench.workload import generate, iter_json_lines
from flows.replay import replay
from operators.otlp import decode_trace_proto
from operators.otlp.messages import Decoded
from operators.otlp.spans import SpanBatch
from operators.sampling import keep_mask
from sinks.archive import SpanArchive
from sinks.archive.columns import _attribute_text, span_record_batch
from sinks.archive.reader import scan_spans
from sinks.archive.writer import _table, enforce_retention
from sre_space.settings import load_pipeline_config


def test_replay_archives_every_span_partitioned_by_hour(tmp_path: Path) -> None:
    # 2 000 spans at 0.5/s span a little over an hour of event time: two hour partitions.
    requests, truth = generate(2_000, seed=4, spans_per_request=100, rate_per_s=0.5)
    path = tmp_path / "rec.jsonl"
    path.write_text("".join(line + "\n" for line in iter_json_lines(requests)))
    archive = tmp_path / "spans"
    replay([path], tmp_path / "out", load_pipeline_config(), archive=archive)
    hours = sorted(p.relative_to(archive).as_posix() for p in archive.glob("dt=*/hour=*"))
    assert len(hours) >= 2
    frame = scan_spans(archive, int(truth.end_ns.min()), int(truth.end_ns.max()) + 1).collect()
    assert frame.height == 2_000
    assert sorted(frame["duration_ns"].to_list()) == sorted(truth.duration_ns.tolist())
    assert frame["is_error"].sum() == int(truth.error.sum())
    assert set(frame.columns) >= {
        "trace_id",
        "span_id",
        "service",
        "operation",
        "http.route",
        "events",
    }
    # A query window prunes to its hour partitions and filters exactly.
    lo, hi = int(truth.end_ns[100]), int(truth.end_ns[200])
    window = scan_spans(archive, lo, hi).collect()
    assert window.height == int(((truth.end_ns >= lo) & (truth.end_ns < hi)).sum())
    removed = enforce_retention(
        archive, max_age_hours=0, max_bytes=10**12, now_ns=int(truth.end_ns.max())
    )
    assert removed and scan_spans(archive, lo, hi).collect().height == 0


def test_sampling_keeps_errors_slow_spans_and_whole_traces() -> None:
    requests, _ = generate(4_000, seed=6, spans_per_request=4_000, error_rate=0.05)
    batch = decode_trace_proto(requests[0])
    mask = keep_mask(batch, rate=0.1)
    assert mask[batch.is_error].all()
    dur = batch.duration_ns
    assert mask[dur >= np.quantile(dur, 0.95)].all()
    share = mask.mean()
    assert 0.1 < share < 0.3  # ~10% sampled plus errors and tail
    # Decided by trace id: the same trace id gives the same answer in any batch.
    again = keep_mask(batch, rate=0.1)
    assert (again == mask).all()
    frame = pl.DataFrame({"trace": [t.hex() for t in batch.trace_id], "keep": mask})
    assert frame.height == len(batch)


def test_frame_of_kept_rows_equals_the_filtered_full_frame() -> None:
    requests, _ = generate(600, seed=8, spans_per_request=600, error_rate=0.1)
    batch = decode_trace_proto(requests[0])
    mask = keep_mask(batch, rate=0.2)
    selected = ("http.route", "http.request.method", "k8s.pod.name")
    full = batch.to_polars(selected).filter(pl.Series(mask))
    kept = batch.to_polars(selected, np.flatnonzero(mask).tolist())
    assert kept.equals(full)
    assert 0 < kept.height < len(batch)


def test_a_poll_added_at_once_writes_what_its_requests_added_one_by_one_write(
    tmp_path: Path,
) -> None:
    # Requests of mixed sizes (small ones are converted together) through the sampler and not.
    sizes = [300, 50, 9_000, 700, 20, 4_000, 5_000, 100]
    requests = [
        decode_trace_proto(generate(n, seed=i, spans_per_request=n, error_rate=0.05)[0][0])
        for i, n in enumerate(sizes)
    ]
    polls = [Decoded(source="rec", partition=0, offset=i, spans=b) for i, b in enumerate(requests)]
    selected = ("http.route", "http.request.method", "no.such.attribute")
    for rate in (1.0, 0.3):
        written = []
        for name, add in (
            ("one", lambda a: [a.add(p) for p in polls]),
            ("all", lambda a: a.add(polls)),
        ):
            archive = SpanArchive(
                tmp_path / f"{name}-{rate}", selected, sample_rate=rate, flush_rows=3_000
            )
            add(archive)
            # The same rows in the same order and hour partitions (where flushes cut files may
            # differ: unsampled, a poll's requests are buffered as one batch).
            written.append(
                [
                    (f.parent.name, row)
                    for f in archive.flush()
                    for row in pq.read_table(f).to_pylist()
                ]
            )
        assert written[0] == written[1]
        assert written[0]


T0 = 1_767_571_200 * 10**9


def _spans(ids: list[tuple[bytes, bytes, bytes]], start_ns: int = T0) -> Decoded:
    spans = [
        SpanSpec(
            trace_id=t, span_id=s, parent_span_id=p, name="op", start_ns=start_ns, end_ns=T0 + 5
        )
        for t, s, p in ids
    ]
    data = trace_request([({"service.name": "svc"}, spans)]).SerializeToString()
    return Decoded(source="rec", partition=0, offset=0, spans=decode_trace_proto(data))


def test_ids_are_stored_as_fixed_size_bytes_and_read_back_as_hex(tmp_path: Path) -> None:
    root, child = bytes(range(16)), bytes(range(100, 116))
    ids = [(root, b"\x01" * 8, b""), (root, b"\x02" * 8, b"\x01" * 8), (child, b"\xff" * 8, b"")]
    archive = SpanArchive(tmp_path)
    archive.add(_spans(ids))
    [path] = archive.flush()
    schema = pq.ParquetFile(path).schema
    layout = {
        c: (schema.column(i).physical_type, schema.column(i).length)
        for i, c in enumerate(schema.names)
        if c in ("trace_id", "span_id", "parent_span_id")
    }
    assert layout == {
        "trace_id": ("FIXED_LEN_BYTE_ARRAY", 16),
        "span_id": ("FIXED_LEN_BYTE_ARRAY", 8),
        "parent_span_id": ("FIXED_LEN_BYTE_ARRAY", 8),
    }
    assert "duration_ns" not in schema.names  # derived by the reader
    # Only the ids may be null; the rest is required (Parquet writes no definition levels).
    optional = {c.name for c in schema if c.max_definition_level > 0}
    assert optional == {"trace_id", "span_id", "parent_span_id"}
    chunks = pq.ParquetFile(path).metadata.row_group(0)
    codecs = {
        chunks.column(i).path_in_schema: chunks.column(i).compression
        for i in range(len(schema.names))
    }
    assert codecs["span_id"] == codecs["parent_span_id"] == "UNCOMPRESSED"
    assert pq.read_table(path).column("parent_span_id").null_count == 2  # the roots
    frame = scan_spans(tmp_path, T0, T0 + 10).collect()
    assert frame.select("trace_id", "span_id", "parent_span_id", "duration_ns").rows() == [
        (t.hex(), s.hex(), p.hex(), 5) for t, s, p in ids
    ]


def test_odd_parent_ids_and_an_archive_written_as_hex_text_read_back_alike(
    tmp_path: Path,
) -> None:
    # The decoders check trace and span ids, not the parent's length.
    odd = [(b"\x07" * 16, b"\x08" * 8, b"\x09" * 5), (b"\x0a" * 16, b"\x0b" * 8, b"")]
    archive = SpanArchive(tmp_path)
    archive.add(_spans(odd))
    [path] = archive.flush()
    assert pq.read_table(path).schema.field("parent_span_id").type == pa.binary()
    # A file of the earlier layout (ids as hex text) in the same hour partition.
    legacy = pq.read_table(path).to_pydict()
    for c in ("trace_id", "span_id", "parent_span_id"):
        legacy[c] = [(v or b"").hex() for v in legacy[c]]
    legacy["duration_ns"] = [7, 7]  # stored, not derived, before
    pq.write_table(pa.table(legacy), path.with_name("part-old.parquet"), store_schema=False)
    frame = scan_spans(tmp_path, T0, T0 + 10).collect()
    rows = [(t.hex(), s.hex(), p.hex()) for t, s, p in odd]
    assert sorted(frame.select("trace_id", "span_id", "parent_span_id", "duration_ns").rows()) == (
        sorted([(*r, 5) for r in rows] + [(*r, 7) for r in rows])
    )


def test_the_decoders_packed_ids_give_the_columns_the_id_lists_give() -> None:
    requests, _ = generate(3_000, seed=9, spans_per_request=1_000)
    batches = [decode_trace_proto(r) for r in requests]
    # a parent in every other span, so the parent column has nulls and values
    spans = [
        SpanSpec(
            trace_id=bytes([k]) * 16,
            span_id=bytes([k + 1]) * 8,
            parent_span_id=bytes([k + 2]) * 8 if k % 2 else b"",
            name="op",
            start_ns=T0,
            end_ns=T0 + 5,
        )
        for k in range(40)
    ]
    batches.append(
        decode_trace_proto(trace_request([({"service.name": "svc"}, spans)]).SerializeToString())
    )
    assert all(b.packed_ids is not None for b in batches)
    lists = [unpacked(b) for b in batches]
    packed = span_record_batch(batches)
    assert packed.equals(span_record_batch(lists))
    assert packed.column("parent_span_id").null_count == 3_000 + 20


def unpacked(batch: SpanBatch) -> SpanBatch:
    """`batch` with its ids as lists only."""
    return dataclasses.replace(
        batch,
        _trace_id=batch.trace_id,
        _span_id=batch.span_id,
        _parent_span_id=batch.parent_span_id,
        packed_ids=None,
    )


def test_the_duration_the_reader_derives_is_clamped_at_zero_like_the_decoders(
    tmp_path: Path,
) -> None:
    archive = SpanArchive(tmp_path)
    archive.add(_spans([(b"\x01" * 16, b"\x02" * 8, b"")], start_ns=T0 + 9))  # ends before start
    archive.flush()
    [duration] = scan_spans(tmp_path, T0, T0 + 10).collect()["duration_ns"].to_list()
    assert duration == 0


def test_text_columns_of_one_value_are_stored_as_dictionaries_and_read_back_as_text(
    tmp_path: Path,
) -> None:
    # One flush of requests where an attribute is absent, has one value, or several values.
    one = _spans([(b"\x01" * 16, b"\x02" * 8, b""), (b"\x03" * 16, b"\x04" * 8, b"")])
    several = [
        Decoded(source="rec", partition=0, offset=i, spans=decode_trace_proto(r))
        for i, r in enumerate(generate(600, seed=4, spans_per_request=300, start_ns=T0)[0])
    ]
    selected = ("http.route", "no.such.attribute")
    assert several[0].spans is not None and one.spans is not None
    constant = span_record_batch(one.spans, selected)
    assert isinstance(constant.column("no.such.attribute"), pa.DictionaryArray)
    assert isinstance(constant.column("events"), pa.DictionaryArray)
    assert isinstance(
        span_record_batch(several[0].spans, selected).column("http.route"), pa.StringArray
    )
    archive = SpanArchive(tmp_path, selected)
    for d in (one, several[0], one, several[1]):
        archive.add(d)
    [path] = archive.flush()
    stored = pq.read_table(path)
    assert all(pa.types.is_string(stored.schema.field(c).type) for c in (*selected, "events"))
    expected: list[str] = []
    for d in (one, several[0], one, several[1]):
        assert d.spans is not None
        expected += d.spans.attribute_columns(selected)["http.route"]
    assert stored.column("http.route").to_pylist() == expected
    assert set(stored.column("no.such.attribute").to_pylist()) == {""}
    frame = scan_spans(tmp_path, T0, T0 + 10**12).collect()
    assert frame.height == len(expected) and set(frame["no.such.attribute"]) == {""}


def test_only_a_column_of_one_value_is_taken_for_one() -> None:
    zeros = pa.array([0, 0, 0], pa.int32())

    def column(*values: bytes) -> pa.Array:
        offsets = np.cumsum([0, *map(len, values)]).astype(np.int32)
        return _attribute_text(len(values), [(offsets, b"".join(values))], zeros)

    assert column(b"ab", b"ab", b"ab").to_pylist() == ["ab"] * 3
    assert isinstance(column(b"ab", b"ab", b"ab"), pa.DictionaryArray)
    # the same bytes end to end, and as many, but other values
    assert column(b"ab", b"aba", b"b").to_pylist() == ["ab", "aba", "b"]
    assert column(b"", b"", b"").to_pylist() == [""] * 3


def test_a_flush_shares_one_dictionary_per_column_so_parquet_writes_the_codes() -> None:
    # Each request's names come in their own order; a changed dictionary makes Parquet hash
    # every value of the column again.
    requests = generate(2_000, seed=5, spans_per_request=500)[0]
    batches = [span_record_batch(decode_trace_proto(r), ("http.route",)) for r in requests]
    operations = [b.column("operation").dictionary for b in batches]
    assert any(not d.equals(operations[0]) for d in operations)
    table = _table(batches)
    for name in ("service", "operation"):
        chunks = table.column(name).chunks
        assert all(c.dictionary.equals(chunks[0].dictionary) for c in chunks)
    assert table.column("operation").to_pylist() == [
        v for b in batches for v in b.column("operation").to_pylist()
    ]


def test_the_error_flag_is_derived_on_read_as_the_decoders_set_it(tmp_path: Path) -> None:
    # (kind, status, attributes, failing): an ERROR status, 5xx on a server span but not on a
    # client span, 4xx, and gRPC codes on server, consumer and client spans
    cases = [
        (2, 2, {}, True),
        (2, 0, {"http.response.status_code": 503}, True),
        (3, 0, {"http.response.status_code": 503}, False),
        (2, 0, {"http.response.status_code": 404}, False),
        (2, 0, {"rpc.grpc.status_code": 14}, True),
        (5, 0, {"rpc.grpc.status_code": 2}, True),
        (3, 0, {"rpc.grpc.status_code": 14}, False),
        (2, 0, {"rpc.grpc.status_code": 0}, False),
        (1, 0, {}, False),
    ]
    spans = [
        SpanSpec(
            bytes([k + 1]) * 16,
            bytes([k + 1]) * 8,
            "op",
            T0,
            T0 + 5,
            kind=kind,
            status_code=status,
            attributes=attrs,
        )
        for k, (kind, status, attrs, _) in enumerate(cases)
    ]
    data = trace_request([({"service.name": "svc"}, spans)]).SerializeToString()
    batch = decode_trace_proto(data)
    assert batch.is_error.tolist() == [failing for *_, failing in cases]
    archive = SpanArchive(tmp_path / "spans")
    archive.add([Decoded(source="rec", partition=0, offset=0, spans=batch)])
    [path] = archive.flush()
    assert "is_error" not in pq.read_schema(path).names
    expect = {bytes([k + 1]).hex() * 8: f for k, (*_, f) in enumerate(cases)}
    frame = scan_spans(tmp_path / "spans", T0, T0 + 10).collect()
    assert dict(frame.select("span_id", "is_error").rows()) == expect
    # a file of the earlier layout keeps its stored flag (inverted here, so that it is seen read)
    legacy = pq.read_table(path).append_column("is_error", pa.array([not f for *_, f in cases]))
    old = tmp_path / "old" / path.relative_to(tmp_path / "spans")
    old.parent.mkdir(parents=True)
    pq.write_table(legacy, old, store_schema=False)
    frame = scan_spans(tmp_path / "old", T0, T0 + 10).collect()
    assert dict(frame.select("span_id", "is_error").rows()) == {k: not f for k, f in expect.items()}
