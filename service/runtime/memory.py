"""The process's resident memory, and giving freed memory back to the system.

glibc's allocator keeps freed chunks in its arenas for reuse: after a session is released its
pages often stay resident, so a server that loads and unloads models (a memory budget) would see
its RSS ratchet up to the largest it ever was. `malloc_trim(0)` returns the free pages at the top
of every arena and the unused pages inside them; it is called after unloads, off the event loop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 where it cannot be read)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _libc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # musl and other libcs have no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _libc_trim()


def release_free_memory() -> bool:
    """Hands the allocator's free pages back to the system; False where there is no
    malloc_trim (not glibc)."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
