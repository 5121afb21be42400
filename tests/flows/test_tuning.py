"""The process tuning a flow applies when it is built."""

from __future__ import annotations

import gc
import platform
import threading
from collections.abc import Iterator
from pathlib import Path

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import cluster_main

import flows.sources
from flows import tuning
from flows.sources import RecordingSource
from operators.otlp.messages import RawMessage


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


def test_a_kept_thread_state_is_released_after_as_many_releases() -> None:
    seen: list[int] = []

    def keep_and_release() -> None:  # on a thread of its own: nothing held there before
        tuning.release_thread_state()  # none held: nothing to undo
        seen.append(getattr(tuning._held, "holders", 0))
        tuning.keep_thread_state()
        tuning.keep_thread_state()
        seen.append(tuning._held.holders)
        tuning.release_thread_state()
        seen.append(tuning._held.holders)
        tuning.release_thread_state()
        tuning.release_thread_state()
        seen.append(tuning._held.holders)

    thread = threading.Thread(target=keep_and_release)
    thread.start()
    thread.join()
    assert seen == [0, 2, 1, 0]


def test_without_cpythons_api_no_thread_state_is_held(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "_capi", None)  # PyPy has no ctypes.pythonapi
    seen: list[int] = []

    def keep() -> None:
        tuning.keep_thread_state()
        seen.append(getattr(tuning._held, "holders", 0))
        tuning.release_thread_state()

    thread = threading.Thread(target=keep)
    thread.start()
    thread.join()
    assert seen == [0]


@pytest.mark.parametrize("kept", [True, False])
def test_a_cluster_worker_keeps_its_thread_state_while_a_recording_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: bool
) -> None:
    # cluster_main's worker thread has no thread state between activations unless its source
    # keeps one: a thread-local set in one poll is gone by the next.
    if not kept:
        monkeypatch.setattr(flows.sources, "keep_thread_state", lambda: None)
        monkeypatch.setattr(flows.sources, "release_thread_state", lambda: None)
    path = tmp_path / "rec.jsonl"
    path.write_text("".join('{"resourceSpans": []}\n' for _ in range(12)))
    local = threading.local()
    fresh: list[int] = []

    def look(poll: list[RawMessage]) -> list[RawMessage]:
        if not hasattr(local, "seen"):
            local.seen = True
            fresh.append(len(poll))
        return poll

    flow = Dataflow("thread_state")
    polls = op.input("in", flow, RecordingSource([path], batch=2))
    op.inspect("look", op.map("map", polls, look), lambda *_: None)
    cluster_main(flow, [], 0)
    # Six polls of two records; Timely may hand the map two polls in one activation, so without
    # the hold the state is new more than once, not necessarily six times.
    assert len(fresh) == 1 if kept else len(fresh) > 1
