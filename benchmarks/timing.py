"""Side-by-side timing: interleaved repetitions, medians, ratios against a baseline.

Every benchmark in this folder measures its baseline in the same process, in
the same loop, alternating with the candidates, so that machine noise hits both
alike; it reports the median of the per-round ratios and a PASS/FAIL against
its target.

Every script runs where ``--device`` says (``cpu`` or ``cuda``) in the way a
:class:`Setting` describes: on CUDA by default as researchers train there (bf16
autocast, channels_last, ``cudnn.benchmark``), on the CPU by default in float32 and
the contiguous layout (the figures of benchmarks/RESULTS.md), either changed with
``--precision`` and ``--channels-last``. Timing synchronises the device around each
call and leaves the warm-up calls out. ``--tiny`` runs a script in seconds (one round,
small inputs): CI runs every script so, so that none can rot.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch


_malloc = "glibc defaults"


@dataclass(frozen=True)
class Setting:
    """Where and how a benchmark runs: the device, the autocast precision, the memory format."""

    device: str = "cpu"  # "cpu" or "cuda"
    precision: str = "32"  # "32" (float32) or "bf16" (bf16 autocast around forward passes)
    channels_last: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context a forward pass runs in: bf16 autocast, or nothing."""
        if self.precision == "bf16":
            return torch.autocast(self.device, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model on the device, in the memory format."""
        return model.to(self.device, memory_format=self.memory_format)

    def tensor(self, t: torch.Tensor) -> torch.Tensor:
        """A tensor on the device; an image batch (4-d) in the memory format."""
        t = t.to(self.device)
        return t.contiguous(memory_format=self.memory_format) if t.dim() == 4 else t

    def synchronize(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def describe(self) -> str:
        return (f"{self.device}, {'bf16 autocast' if self.precision == 'bf16' else 'float32'}, "
                f"{'channels_last' if self.channels_last else 'contiguous'}")


_setting = Setting()


@contextlib.contextmanager
def using(setting: Setting) -> Iterator[Setting]:
    """Run the block's timings (synchronisation, :func:`machine`) in ``setting``."""
    global _setting
    previous, _setting = _setting, setting
    try:
        yield setting
    finally:
        _setting = previous


def machine() -> str:
    """A one-line description of where the numbers come from."""
    if _setting.device == "cuda":
        device = torch.cuda.get_device_name()
    else:
        device = f"CPU, {torch.get_num_threads()} threads"
    return (f"{platform.processor() or platform.machine()}; {device}; {_setting.describe()}; torch {torch.__version__}; "
            f"malloc: {_malloc}")


def interleaved_times(fns: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each function, ``repeats`` rounds of one call each, after ``warmup`` untimed rounds.

    The order rotates from round to round so that no function always runs
    first (after the others have left the caches) or last. The device is
    synchronised before and after each timed call.
    """
    sync = _setting.synchronize
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

    Applies threads, recal's kernels and the :class:`Setting` (``args.setting``; later timings
    use it). ``images`` adds ``--batch`` and ``--size``; ``add`` lets a script add its own options.
    ``--tiny`` sets one round, one warm-up (``args.warmup``), batch 2 and 64² images.
    """
    from recal.allocator import keep_freed_memory
    from recal.layers.kernels import set_kernels

    parser = argparse.ArgumentParser(description=description)
    add_setting_options(parser)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--kernels", choices=["compiled", "eager"], default="compiled")
    parser.add_argument("--malloc", choices=["keep", "default"], default="keep",
                        help="keep: freed memory stays in the process, as in recal's CLI runs (recal/allocator.py)")
    parser.add_argument("--tiny", action="store_true", help="seconds, not minutes: one round at small sizes (CI)")
    if images:
        parser.add_argument("--batch", type=int, default=8)
        parser.add_argument("--size", type=int, default=224)
    if add is not None:
        add(parser)
    args = parser.parse_args(argv)
    args.warmup = 2
    if args.tiny:
        args.repeats, args.warmup = 1, 1
        if images:
            args.batch, args.size = 2, 64
    args.setting = apply_setting(parser, args)
    torch.set_num_threads(args.threads)
    set_kernels(args.kernels)
    if args.malloc == "keep" and keep_freed_memory():
        global _malloc
        _malloc = "keep freed memory (recal.allocator)"
    return args


def add_setting_options(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--precision`` and ``--channels-last`` (defaults follow the device)."""
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["32", "bf16"], default=None,
                        help="32: float32; bf16: bf16 autocast (default: bf16 on cuda, 32 on cpu)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="channels_last models and inputs (default: on for cuda, off for cpu)")


def apply_setting(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Setting:
    """The :class:`Setting` the options name, made current; on CUDA also ``cudnn.benchmark``."""
    global _setting
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error(f"--device cuda: no CUDA device is visible to torch {torch.__version__} "
                     f"(torch.cuda.is_available() is False); use --device cpu")
    if cuda:
        torch.backends.cudnn.benchmark = True  # the convolution algorithms are chosen in the warm-up calls
    _setting = Setting(args.device, args.precision or ("bf16" if cuda else "32"),
                       cuda if args.channels_last is None else args.channels_last)
    return _setting
