"""Run-time figures and the memory controls the benchmarks use to measure one section of a process."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from spotlake_assets.orchestration.metrics import (
    Stopwatch,
    current_rss_mib,
    peak_rss_mib,
    release_freed_memory,
    section_peak_rss_mib,
    start_rss_section,
)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_stopwatch_counts_up() -> None:
    watch = Stopwatch()
    assert watch.seconds() >= 0.0


@linux_only
def test_current_rss_follows_an_allocation() -> None:
    before = current_rss_mib()
    block = np.ones(48 * 1024 * 1024 // 8)  # 48 MiB, every page touched
    during = current_rss_mib()
    assert before is not None and during is not None
    assert during - before > 40
    # Both read the kernel's RSS counters, which are batched per CPU: allow that slack.
    assert peak_rss_mib() >= during - 2
    del block


@linux_only
def test_a_section_restarts_the_high_water_mark_but_not_the_process_peak() -> None:
    block = np.ones(64 * 1024 * 1024 // 8)
    high = peak_rss_mib()
    del block
    assert start_rss_section() is True
    now = current_rss_mib()
    assert now is not None
    # The 64 MiB block is gone: the section's peak sits at today's RSS, well under the old high-water mark,
    # while the process peak still remembers it.
    assert section_peak_rss_mib() < high - 40
    assert section_peak_rss_mib() <= now + 8
    assert peak_rss_mib() >= high


@linux_only
def test_a_section_sees_its_own_allocations() -> None:
    start_rss_section()
    before = section_peak_rss_mib()
    block = np.ones(48 * 1024 * 1024 // 8)
    assert section_peak_rss_mib() > before + 40
    del block


@linux_only
def test_a_stopwatch_reports_the_peak_since_it_started() -> None:
    block = np.ones(64 * 1024 * 1024 // 8)
    high = peak_rss_mib()
    del block
    watch = Stopwatch()
    assert watch.peak_rss_mib() < high - 40
    assert peak_rss_mib() >= high


@linux_only
def test_release_freed_memory_hands_heap_holes_back() -> None:
    # Small blocks come from the heap rather than mmap, so freeing them leaves RSS behind until trimmed.
    blocks = [bytearray(64 * 1024) for _ in range(1024)]
    for block in blocks:
        block[::4096] = b"\x01" * len(block[::4096])
    filled = current_rss_mib()
    del blocks, block
    assert release_freed_memory() is True
    after = current_rss_mib()
    assert filled is not None and after is not None
    assert after < filled - 32
