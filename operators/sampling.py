"""Which spans the archive keeps: a trace-consistent sample, plus every error and the slow tail.

The sample is decided by the trace id's bytes, so every service's spans of a sampled trace are kept
whatever batch they arrive in; errors and the slowest spans are kept even outside the sample,
because those are the ones a diagnosis looks at.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from operators.otlp.spans import SpanBatch


def keep_mask(batch: SpanBatch, rate: float, tail_quantile: float = 0.95) -> npt.NDArray[np.bool_]:
    """A boolean mask over the batch's spans: kept when sampled, failing, or in the slow tail."""
    n = len(batch)
    if n == 0 or rate >= 1.0:
        return np.ones(n, dtype=bool)
    # The trace id's last 8 bytes are random by W3C trace-context; read them as a uniform number.
    tail = np.frombuffer(b"".join(t[-8:].rjust(8, b"\0") for t in batch.trace_id), dtype=">u8")
    sampled = tail < np.uint64(int(rate * 2**64 - 1))
    dur = batch.duration_ns
    slow = dur >= np.quantile(dur, tail_quantile)
    return sampled | batch.is_error | slow
