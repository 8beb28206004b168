"""Give the heap's freed pages back to the operating system after a run.

glibc keeps memory that Python, NumPy and PyTorch freed inside its heap arenas, to serve later
allocations. How much it keeps after a training run depends on the order in which blocks were
freed, and it varied by a quarter of the run's peak between identical runs (the ``mapped``
configuration of ``tests/unit/test_estimate.py``: 606–758 MiB of peak growth over six runs).
``malloc_trim(0)`` returns every free page, so what a finished run leaves resident is what its
trace holds, and a server that trained a run does not carry the run's garbage into the next.
Elsewhere (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_freed_memory() -> bool:
    """Return the heap's free pages to the OS; ``True`` when glibc released any."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
