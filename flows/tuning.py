"""The process settings a flow runs best with: Python's GC and glibc's allocator.

Both are process-wide, so a flow sets them when it is built (`tune_process`): the GC threshold is
never lowered, and an allocator tuned through GLIBC_TUNABLES is left as its operator set it.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os

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
