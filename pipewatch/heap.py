"""The C heap of a long-running pipewatch process (glibc's malloc; elsewhere these do nothing).

glibc raises its mmap threshold each time a large block it had mapped is freed (up to 32 MB), after which blocks
of that size come from the main heap: the collectors' buffers (fetch answers, response bodies, the store's arrays)
then land between small long-lived objects and leave holes the heap never gives back. With the thresholds pinned,
large blocks stay mapped and are unmapped when freed, and the heap's free top goes back to the system early
(docs/memory.md: what this changed, measured).
"""

from __future__ import annotations

import ctypes
import ctypes.util

MMAP_THRESHOLD_BYTES = 128 * 1024
"""Blocks of this size or larger are mapped on their own (glibc's starting value, kept from moving)."""
TRIM_THRESHOLD_BYTES = 128 * 1024
"""Free memory at the top of the heap beyond this goes back to the system."""

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _libc():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


_LIBC = _libc()
_mallopt = getattr(_LIBC, "mallopt", None)
_malloc_trim = getattr(_LIBC, "malloc_trim", None)


def pin_thresholds() -> None:
    """Fix glibc's mmap and trim thresholds for the rest of the process (nothing where there is no glibc)."""
    if _mallopt is not None:
        _mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        _mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)


def trim() -> None:
    """Hand the heap's free pages back to the system (after sessions closed: glibc would keep them)."""
    if _malloc_trim is not None:
        _malloc_trim(0)
