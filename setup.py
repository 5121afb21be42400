"""Builds the optional compiled OTLP decoder; the project metadata lives in pyproject.toml."""

from setuptools import Extension, setup

WIRE = "operators/otlp/_wire"

setup(
    ext_modules=[
        Extension(
            "operators.otlp._wire",
            [f"{WIRE}.c", f"{WIRE}_read.c", f"{WIRE}_spans.c", f"{WIRE}_cols.c"],
            depends=[f"{WIRE}.h"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
