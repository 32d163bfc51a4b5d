"""What the benchmarks need to know about the machine they share: its CPU, and how busy other work keeps it.

On a shared 2-core machine another job can slow a measurement several-fold (torch threads spin on a busy core),
so each bench reports the cores other work used and waits for a quiet machine before measuring.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

CONTENDED = 0.25  # cores of other work during a measurement above which it is repeated (see --retries)


def machine_busy_s() -> float:
    """CPU seconds all cores have spent busy since boot (Linux /proc/stat); NaN elsewhere."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user nice system idle iowait irq softirq steal


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def wait_for_quiet(limit_s: float, threshold: float = CONTENDED, sample_s: float = 2.0) -> float:
    """Wait up to `limit_s` for other work to use under `threshold` cores; returns the last sample (cores)."""
    deadline = time.perf_counter() + limit_s
    said = -float("inf")
    while True:
        before = machine_busy_s()
        time.sleep(sample_s)
        busy = (machine_busy_s() - before) / sample_s
        now = time.perf_counter()
        if not busy > threshold or now >= deadline:  # NaN (no /proc) counts as quiet
            return busy
        if now - said >= 15:
            print(f"[bench] waiting for the machine to quieten: other work uses {busy:.2f} cores", flush=True)
            said = now
