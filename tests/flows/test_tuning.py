"""The process tuning a flow applies when it is built."""

from __future__ import annotations

import gc
import platform
from collections.abc import Iterator

import pytest

from flows import tuning


@pytest.fixture
def gc_threshold() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("gc_threshold")
def test_gc_threshold_is_raised_never_lowered() -> None:
    gc.set_threshold(700, 10, 10)
    tuning.tune_process()
    assert gc.get_threshold() == (tuning.GC_YOUNG_THRESHOLD, 10, 10)
    gc.set_threshold(50_000, 10, 10)
    tuning.tune_process()
    assert gc.get_threshold() == (50_000, 10, 10)


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt"
)
def test_glibc_allocator_takes_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert tuning.keep_freed_memory()  # every setting taken (mallopt has no getter)


def test_an_operators_glibc_tunables_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")
    assert not tuning.keep_freed_memory()
