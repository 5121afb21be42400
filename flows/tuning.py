"""The process settings a flow runs best with: Python's GC, glibc's allocator, and the worker
threads' Python thread states.

The first two are process-wide, so a flow sets them when it is built (`tune_process`): the GC
threshold is never lowered, and an allocator tuned through GLIBC_TUNABLES is left as its operator
set it. The thread state is per worker thread: its sources keep it while they read
(`keep_thread_state`).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import threading

log = logging.getLogger(__name__)

# Young collections traverse every list a decoder builds (a reference per span), with Python's
# default of 700 several hundred times per million spans (5 to 8% of the flow's CPU); the flow's
# own objects are few and long-lived, so the youngest generation is collected less often.
GC_YOUNG_THRESHOLD = 10_000

# glibc's mallopt parameters (malloc.h) and the values the flow wants. By default glibc maps
# blocks over 128 KiB to fresh pages and unmaps them when freed, and gives back the top of its heap
# once 128 KiB of it is free: Kafka's fetch buffers, a request's decoded columns and a poll's
# arrays are that size, so every poll faulted its memory in again (50k page faults per million
# spans in 512-span requests; system time was a sixth of the flow's CPU). Kept, freed memory is
# reused: 34k faults (the first touch of the peak), 4% less CPU, the same peak RSS.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MALLOC_SETTINGS = {
    M_MMAP_THRESHOLD: 32 * 2**20,  # a poll's largest buffers come from the heap too
    M_TRIM_THRESHOLD: 128 * 2**20,
    M_TOP_PAD: 16 * 2**20,
}


def tune_process() -> None:
    """Raise the youngest GC threshold to `GC_YOUNG_THRESHOLD`; keep freed memory for reuse."""
    young, *older = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), *older)
    keep_freed_memory()


def keep_freed_memory() -> bool:
    """Set `MALLOC_SETTINGS` through glibc's mallopt; False where the C library has none, or
    where GLIBC_TUNABLES tunes malloc already."""
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False  # not glibc (macOS, Windows): its allocator is left as it is
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = all(mallopt(param, value) == 1 for param, value in MALLOC_SETTINGS.items())
    if not ok:
        log.debug("mallopt refused a setting; the C library's allocator keeps its defaults")
    return ok


# Bytewax's cluster_main runs each worker on a thread of its own that holds no Python thread state
# between activations: PyO3 makes one for every call into Python and deletes it after
# (PyGILState_Ensure/Release). So each activation mapped and unmapped the new state's 16 KiB frame
# stack, and thread-locals and context variables were lost (bench.scaleout, 2 processes: 13k to
# 15k mmap and munmap calls each, against 1.9k in all for one process reading everything).
# A source that holds one Ensure of its own while it reads keeps the state from one call to the
# next. The counts live on the state they pin: a thread-local goes with its thread state. Other
# Pythons than CPython have no `ctypes.pythonapi`: there nothing is held.
_held = threading.local()
_capi = getattr(ctypes, "pythonapi", None)


def keep_thread_state() -> None:
    """Keep the calling thread's Python thread state until as many `release_thread_state`."""
    if _capi is None:
        return
    holders: int = getattr(_held, "holders", 0)
    if holders == 0:
        _held.state = _capi.PyGILState_Ensure()
    _held.holders = holders + 1


def release_thread_state() -> None:
    """Undo one `keep_thread_state` of this thread (none held: nothing)."""
    holders: int = getattr(_held, "holders", 0)
    if holders == 0:
        return
    _held.holders = holders - 1
    if holders == 1 and _capi is not None:
        _capi.PyGILState_Release(_held.state)
