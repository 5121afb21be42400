"""Builds the optional compiled OTLP decoder; the project metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "operators.otlp._wire",
            ["operators/otlp/_wire.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
