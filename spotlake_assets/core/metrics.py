"""Run-time figures every asset reports (wall time and peak RSS), and the memory controls benchmarks use to
measure one section of a process."""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
# "5" resets the process's RSS high-water mark (proc(5), Linux >= 4.0); it leaves the pages themselves alone.
_RESET_HIGH_WATER_MARK = "5"


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    divisor = 1024 * 1024 if sys.platform == "darwin" else 1024
    return round(peak / divisor, 1)


def current_rss_mib() -> float | None:
    """Resident set size now, in MiB (Linux ``/proc``); None where the platform does not expose it."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def release_freed_memory() -> bool:
    """Hand memory already freed by the heap back to the OS (glibc ``malloc_trim``); False where unavailable.

    glibc keeps freed blocks in its arenas, so a benchmark's own setup (building synthetic inputs) would
    otherwise stay resident as holes and be counted against the code it then measures.
    """
    name = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or name is None:
        return False
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (e.g. musl has no malloc_trim)
        return False
    trim(0)
    return True


def reset_peak_rss() -> bool:
    """Restart the peak-RSS high-water mark (:func:`peak_rss_mib`) from the current RSS, so a benchmark can
    report the peak of its timed section alone. False where the kernel does not allow it (non-Linux)."""
    try:
        _CLEAR_REFS.write_text(_RESET_HIGH_WATER_MARK)
    except OSError:
        return False
    return True


@dataclass
class Stopwatch:
    started: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 3)
