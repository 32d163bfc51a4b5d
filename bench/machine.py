"""What the benchmarks need to know about the machine they share: its CPU, and how busy other work keeps it.

On a shared 2-core machine another job can slow a measurement several-fold (torch threads spin on a busy core),
so each bench reports the cores other work used and waits for a quiet machine before measuring.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
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


def add_contention_options(parser: argparse.ArgumentParser, retries: int) -> None:
    """--quiet-wait, --retries and --budget, which `least_contended` reads."""
    parser.add_argument("--quiet-wait", type=float, default=20.0,
                        help="seconds to wait, before each measurement, for other work on the machine to stop")
    parser.add_argument("--retries", type=int, default=retries,
                        help="repeat a measurement that shared the machine with other work up to this many times")
    parser.add_argument("--budget", type=float, default=300.0,
                        help="no more waits or repeats once the bench has run this many seconds")


def least_contended(name: str, measure: Callable[[], dict | None], args: argparse.Namespace,
                    started: float) -> dict | None:
    """Run `measure()` (a dict with "other_load_cores", or None when it failed) after waiting for a quiet machine;
    while other work shared the machine, repeat it (up to --retries times, until the bench has run --budget s),
    keeping the least contended result. A failed measurement ends the repeats."""
    best = None
    for attempt in range(1 + args.retries):
        if time.perf_counter() - started < args.budget:
            wait_for_quiet(args.quiet_wait)
        result = measure()
        if result is None:
            return best
        other = result["other_load_cores"] or 0.0  # None where /proc/stat is missing: taken as quiet
        if best is None or other < (best["other_load_cores"] or 0.0):
            best = result
        best["attempts"] = attempt + 1
        if other <= CONTENDED or time.perf_counter() - started > args.budget or attempt == args.retries:
            return best
        print(f"[bench] {name}: other work used {other:.2f} cores; measuring again, keeping the least contended run",
              flush=True)
    return best
