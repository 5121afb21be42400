"""Builds the optional compiled parts (the OTLP decoders, protobuf and JSON; the detectors' tail
sums; the span aggregator's group-bys; the sketch's bucket merge and ranks); the metadata is in
pyproject.toml."""

from setuptools import Extension, setup

WIRE = "operators/otlp/_wire"
JSON = "operators/otlp/_json"

setup(
    ext_modules=[
        Extension(
            "operators.otlp._wire",
            [f"{WIRE}.c", f"{WIRE}_read.c", f"{WIRE}_spans.c", f"{WIRE}_cols.c"],
            depends=[f"{WIRE}.h"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
        # the OTLP/JSON decoder shares the wire decoder's growable buffers (_wire_read.c)
        Extension(
            "operators.otlp._json",
            [f"{JSON}.c", f"{JSON}_read.c", f"{JSON}_scan.c", f"{WIRE}_read.c"],
            depends=[f"{JSON}.h", f"{WIRE}.h"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
        # the same doubles as the Python loop it replaces: no fused multiply-adds
        Extension(
            "operators.scout.detect._tails",
            ["operators/scout/detect/_tails.c"],
            extra_compile_args=["-O2", "-ffp-contract=off"],
            optional=True,
        ),
        # a packed sketch's buckets merged and ranked, each the numpy form's result (operators/sketch.py)
        Extension(
            "operators._buckets",
            ["operators/_buckets.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        # the span aggregator's group-bys, each the numpy form's result (operators/signals/groups.py)
        Extension(
            "operators.signals._groups",
            ["operators/signals/_groups.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
    ]
)
