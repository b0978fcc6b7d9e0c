"""Side-by-side timing: interleaved repetitions, medians, ratios against a baseline.

Every benchmark in this folder measures its baseline in the same process, in
the same loop, alternating with the candidates, so that machine noise hits both
alike; it reports the median of the per-round ratios and a PASS/FAIL against
its target.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch


_malloc = "glibc defaults"


def machine() -> str:
    """A one-line description of where the numbers come from."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    return f"{platform.processor() or platform.machine()}; {device}; torch {torch.__version__}; malloc: {_malloc}"


def interleaved_times(fns: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each function, ``repeats`` rounds of one call each.

    The order rotates from round to round so that no function always runs
    first (after the others have left the caches) or last.
    """
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            sync()
            start = time.perf_counter()
            fns[name]()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


@dataclass
class Comparison:
    """A candidate against the baseline: median times and the median of per-round ratios.

    The ratio pairs each candidate call with the baseline call of the same round
    (seconds apart), so that slow drifts of a shared machine cancel out.
    """

    baseline_s: float
    candidate_s: float
    ratio: float  # candidate time / baseline time


def compare(fns: dict[str, Callable[[], object]], baseline: str, repeats: int = 7, warmup: int = 2) -> dict[str, Comparison]:
    """Time ``fns`` interleaved; compare every other entry with ``fns[baseline]``."""
    times = interleaved_times(fns, repeats, warmup)
    base = times[baseline]
    return {name: Comparison(statistics.median(base), statistics.median(ts),
                             statistics.median(t / b for t, b in zip(ts, base)))
            for name, ts in times.items() if name != baseline}


@dataclass
class Row:
    """One line of a benchmark table."""

    target: str
    baseline_ms: float
    candidate_ms: float
    ratio: float
    goal: str
    passed: bool | None  # None: a figure reported, with no goal to pass


def print_table(title: str, rows: list[Row]) -> None:
    """Markdown table with one PASS/FAIL per target, and the machine."""
    print(f"\n### {title}\n\nmachine: {machine()}\n")
    print("| target | baseline ms | recal ms | ratio | goal | result |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.target} | {r.baseline_ms:.2f} | {r.candidate_ms:.2f} | {r.ratio:.2f} | {r.goal} | {'—' if r.passed is None else 'PASS' if r.passed else 'FAIL'} |")


def benchmark_args(description: str, repeats: int = 7, images: bool = False,
                   add: Callable[[argparse.ArgumentParser], None] | None = None,
                   argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the options every speed script shares (``argv``, default the command line) and apply them.

    Applies threads and recal's kernels. ``images`` adds ``--batch`` and ``--size``; ``add`` lets
    a script add its own options.
    """
    from recal.allocator import keep_freed_memory
    from recal.layers.kernels import set_kernels

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--kernels", choices=["compiled", "eager"], default="compiled")
    parser.add_argument("--malloc", choices=["keep", "default"], default="keep",
                        help="keep: freed memory stays in the process, as in recal's CLI runs (recal/allocator.py)")
    if images:
        parser.add_argument("--batch", type=int, default=8)
        parser.add_argument("--size", type=int, default=224)
    if add is not None:
        add(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    set_kernels(args.kernels)
    if args.malloc == "keep" and keep_freed_memory():
        global _malloc
        _malloc = "keep freed memory (recal.allocator)"
    return args
