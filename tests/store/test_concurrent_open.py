"""Several processes open one new store file at once, as a Bytewax cluster's workers do."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from sinks.store.sqlite import Store

OPENERS = 4


def _open(path: Path, barrier: mp.synchronize.Barrier, errors: mp.Queue) -> None:  # type: ignore[type-arg]
    barrier.wait()
    try:
        with Store(path) as store:
            store.upsert("signals", "x", {"ok": True})
        errors.put("")
    except Exception as exc:  # reported to the test, which names it
        errors.put(repr(exc))


def test_processes_opening_one_new_file_together_all_get_it(tmp_path: Path) -> None:
    # SQLite refused the switch to WAL at once, without its busy wait, while another opener held
    # a lock: 8 to 12 of 40 rounds of 4 openers failed with "database is locked", and in a
    # two-process flow that error built no sink (Bytewax printed only "Send thread panic").
    ctx = mp.get_context("fork")
    for round_ in range(20):
        path = tmp_path / f"round{round_}" / "sre.db"
        barrier, errors = ctx.Barrier(OPENERS), ctx.Queue()
        procs = [ctx.Process(target=_open, args=(path, barrier, errors)) for _ in range(OPENERS)]
        for p in procs:
            p.start()
        failures = [e for e in (errors.get(timeout=60) for _ in procs) if e]
        for p in procs:
            p.join(timeout=60)
        assert failures == [], f"round {round_}: {failures}"
        with Store(path) as store:
            assert store.count("signals") == 1
