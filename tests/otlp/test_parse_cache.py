"""The decoders' resource caches stay bounded in bytes when a producer sends ever new, large
resources, and the columns they give are the same as without a cache."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.otlp_encode import SpanSpec, to_otlp_json, trace_request
from operators.otlp import DecodeLimits, decode_trace_proto, json_wire, wire
from operators.otlp.cache import ParseCache
from operators.otlp.json_wire import decode_trace_json_wire

BLOB = 256 * 1024
LIMITS = DecodeLimits()


@given(st.lists(st.binary(max_size=64), max_size=200))
def test_a_parse_cache_never_holds_more_than_its_bounds(keys: list[bytes]) -> None:
    cache: ParseCache[bytes, int] = ParseCache(max_entries=8, size=len, max_bytes=100)
    for i, key in enumerate(keys):
        cache.put(key, i)
        assert len(cache) <= 8 and cache.bytes <= 100
        assert cache.get(key, None) == i
        assert cache.bytes == sum(len(k) for k in set(keys[: i + 1]) if k in cache)
    big = b"x" * 101
    cache.put(big, -1)
    assert big not in cache and cache.bytes <= 100


def _request(i: int) -> bytes:
    """One span under a resource with a distinct quarter-megabyte attribute."""
    span = SpanSpec(
        trace_id=i.to_bytes(16, "big"),
        span_id=(i + 1).to_bytes(8, "big"),
        name="GET /",
        start_ns=1_700_000_000_000_000_000 + i,
        end_ns=1_700_000_000_000_100_000 + i,
    )
    attrs = {"service.name": f"svc-{i % 3}", "blob": f"{i:08d}" + "x" * (BLOB - 8)}
    return trace_request([(attrs, [span])]).SerializeToString()


def test_distinct_large_resources_do_not_grow_the_proto_decoder() -> None:
    wire._REQUEST_CACHE.clear()
    wire._RESOURCE_CACHE.clear()
    for i in range(100):  # 25 MiB of distinct resources
        batch = decode_trace_proto(_request(i), LIMITS)
        assert batch.service == [f"svc-{i % 3}"] and len(batch) == 1
        assert batch.resource_attrs[0]["blob"].startswith(f"{i:08d}")
        for cache in (wire._REQUEST_CACHE, wire._RESOURCE_CACHE):
            assert cache.bytes <= cache.max_bytes, cache.bytes
    assert 0 < len(wire._RESOURCE_CACHE) < 100
    # The same resource again is a hit: the cached parse serves it.
    again = _request(99)
    assert decode_trace_proto(again, LIMITS).resource_attrs[0]["blob"].startswith("00000099")


def test_distinct_large_resources_do_not_grow_the_json_decoder() -> None:
    json_wire._RESOURCE_CACHE.clear()
    for i in range(100):
        data = to_otlp_json(ExportTraceServiceRequest.FromString(_request(i))).encode()
        batch = decode_trace_json_wire(data, LIMITS)
        assert batch is not None and batch.service == [f"svc-{i % 3}"]
        assert batch.resource_attrs[0]["blob"].startswith(f"{i:08d}")
        assert json_wire._RESOURCE_CACHE.bytes <= json_wire._RESOURCE_CACHE.max_bytes
    assert 0 < len(json_wire._RESOURCE_CACHE) < 100
