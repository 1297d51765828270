"""Run-time figures every asset reports (wall time and peak RSS), and the memory sections behind them.

A run executes its assets one after another in one process, and the kernel keeps one RSS high-water mark
per process: read as is, every asset after the heaviest one would report that asset's peak. So each asset
starts a *section* (:class:`Stopwatch` does it): the high-water mark restarts from the current RSS and its
earlier value is kept here, so the asset reports the peak of its own stretch (including whatever was
already resident) while :func:`peak_rss_mib` still gives the whole process's peak. Benchmarks use the same
sections to measure their timed part apart from building synthetic inputs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
# "5" resets the process's RSS high-water mark (proc(5), Linux >= 4.0); it leaves the pages themselves alone.
_RESET_HIGH_WATER_MARK = "5"


class _Peaks:
    """The process peak from before the last restart of the kernel's high-water mark."""

    lock = threading.Lock()
    before_section_mib = 0.0


def _high_water_mark_mib() -> float:
    """The kernel's high-water mark (ru_maxrss: KiB on Linux, bytes on macOS), since its last restart."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    divisor = 1024 * 1024 if sys.platform == "darwin" else 1024
    return round(peak / divisor, 1)


def peak_rss_mib() -> float:
    """Peak resident set size of this process since it started, in MiB (sections do not lower it)."""
    with _Peaks.lock:
        return max(_Peaks.before_section_mib, _high_water_mark_mib())


def section_peak_rss_mib() -> float:
    """Peak RSS since the last :func:`start_rss_section`, in MiB: the process peak where sections are not
    supported (or none was started). It counts everything resident, not only what the section allocated."""
    return _high_water_mark_mib()


def start_rss_section() -> bool:
    """Restart the high-water mark from the current RSS, keeping the process peak for :func:`peak_rss_mib`.
    False where the kernel does not allow it (non-Linux): section figures are then process figures."""
    with _Peaks.lock:
        before = _high_water_mark_mib()
        try:
            _CLEAR_REFS.write_text(_RESET_HIGH_WATER_MARK)
        except OSError:
            return False
        _Peaks.before_section_mib = max(_Peaks.before_section_mib, before)
        return True


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


@dataclass
class Stopwatch:
    """Measures one asset: created when it starts, it also starts an RSS section (see the module docstring),
    so :meth:`peak_rss_mib` is the peak while this asset ran rather than an earlier asset's."""

    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        start_rss_section()

    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 3)

    def peak_rss_mib(self) -> float:
        return section_peak_rss_mib()
