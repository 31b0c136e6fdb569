"""Less cyclic garbage collection while a send runs (scoped to the send, not the process)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_GC_LOCK = threading.Lock()
_GC_USERS = 0
_GC_SAVED: tuple[int, ...] = ()
_GC_THRESHOLD0 = 10_000  # container allocations between young collections during a send


@contextmanager
def quiet_gc() -> Iterator[None]:
    """Less cyclic garbage collection while sending: a batch allocates thousands of short-lived
    dicts, and the collector's young passes kept walking them and its full passes walked every
    long-lived object of the process (SQLAlchemy's, the modules'): a third of a send's CPU.
    The objects that exist when the send starts are frozen (`gc.freeze`: left out of
    collections, still freed by reference counting) and young collections run less often;
    both are undone when the last send of the process ends. Memory stays flat only as long as
    a batch leaves no reference cycle behind: garbage in a cycle waits for a full collection,
    which comes rarely here (an HTTP answer's cycle kept each batch's payload: 182 MB peak at
    a million instead of 111; `providers.sendgrid._released`)."""
    global _GC_USERS, _GC_SAVED
    with _GC_LOCK:
        _GC_USERS += 1
        if _GC_USERS == 1:
            gc.freeze()
            _GC_SAVED = gc.get_threshold()
            gc.set_threshold(max(_GC_SAVED[0], _GC_THRESHOLD0), *_GC_SAVED[1:])
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_USERS -= 1
            if _GC_USERS == 0:
                gc.set_threshold(*_GC_SAVED)
                gc.unfreeze()
