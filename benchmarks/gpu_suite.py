"""The GPU suite: recal's networks against torchvision's ResNet-50 where researchers train, in one run.

    python -m benchmarks.gpu_suite --device cuda --out runs/gpu_suite         # about 5 minutes on one GPU
    python -m benchmarks.gpu_suite --device cpu --precision bf16 --channels-last --tiny   # seconds (CI)

Needs only torch, torchvision and recal's layers and models (a GPU machine may lack Lightning,
fvcore and jsonargparse). On CUDA: bf16 autocast, channels_last, ``cudnn.benchmark``, timing
synchronised on the device with warm-up calls left out (benchmarks/timing.py). Every row is
written to ``gpu_suite.md`` and ``gpu_suite.csv`` under ``--out`` (and printed) as soon as it is
measured, so a run cut short keeps what it finished; sections that would start after
``--budget-s`` seconds are written as skipped. Sections, in order:

1. the machine: GPU, torch, torchvision, CUDA, cuDNN, triton;
2. train throughput, eager, at ``--batch`` (256, halved until a step of the heaviest network fits):
   torchvision resnet50 against recal resnet50, SRM, SE, GE, ECA, SKNet-50, ResNeSt-50, interleaved
   round by round; images/s, the ratio, the peak memory a step allocates;
3. fused inference: ``recal.models.fuse`` of SRM- and SE-ResNet-50 against fused ResNet-50;
4. the goals: recal resnet50 ≥ 0.99×, SRM and SE ≥ 0.95×, GE ≥ 0.90× torchvision's train
   throughput, fused SRM ≥ 0.97× fused ResNet-50's inference throughput: met / missed, the gap;
5. recal's fused training nodes against the plain composition (:mod:`recal.layers.kernels.fused_paths`):
   each gate's block end at the four ResNet-50 stage shapes, then whole networks with each node
   off; the last rows say which nodes the table should list for this device type;
6. ``torch.compile`` of the whole model: torchvision resnet50 (the baseline), SRM, SE (``--compiled``);
7. the multiply-adds-are-not-speed networks (ResNet-D-50, ResNeSt-50-fast, CBAM, ResNeXt-50) and
   torchvision networks recalibrated by ``recalibrate`` / ``resnet_from_torchvision``;
8. recal's compiled kernels (``set_kernels("compiled")``) against its eager ones, SRM-ResNet-50.
"""

from __future__ import annotations

import argparse
import csv
import gc
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torchvision

from benchmarks.bench_nodes import (GATE_NODES, NETWORK_NODES, block_node_times, network_node_times, node_speedup,
                                     stage_shapes)
from benchmarks.steps import inference_step, train_step
from benchmarks.timing import Setting, add_setting_options, apply_setting, interleaved_times, using
from recal.layers.kernels import fused_paths, set_kernels
from recal.layers.kernels.dispatch import compile_available
from recal.models import create_model, fuse, resnet_from_torchvision
from recal.models.recalibrate import recalibrate

BASELINE = "torchvision resnet50"
GOAL_NETWORKS = ("resnet50", "srm_resnet50", "se_resnet50", "ge_resnet50", "eca_resnet50", "sknet50", "resnest50")
TRAIN_GOALS = {"resnet50": 0.99, "srm_resnet50": 0.95, "se_resnet50": 0.95, "ge_resnet50": 0.90}
INFERENCE_GOAL = ("fused srm_resnet50", 0.97)
THROUGHPUT_NETWORKS = ("resnet50d", "resnest50_fast", "cbam_resnet50", "resnext50_32x4d")
RECALIBRATED = ("mobilenet_v2", "efficientnet_b0", "regnet_x_400mf")
COLUMNS = ("section", "measurement", "value", "unit", "ratio", "ratio to", "peak GiB", "note")

Builder = Callable[[], torch.nn.Module]


class Table:
    """The suite's table, written row by row to Markdown and CSV (each flushed) and printed."""

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        self.markdown = open(out / "gpu_suite.md", "w", encoding="utf-8")
        self.csv_file = open(out / "gpu_suite.csv", "w", newline="", encoding="utf-8")
        self.csv = csv.DictWriter(self.csv_file, COLUMNS)
        self.csv.writeheader()

    def line(self, text: str) -> None:
        print(text, flush=True)
        self.markdown.write(text + "\n")
        self.markdown.flush()

    def header(self, title: str, lines: list[str]) -> None:
        self.line(f"# {title}\n")
        for text in lines:
            self.line(f"- {text}")
        self.line("\n| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS))

    def add(self, section: str, measurement: str, value: float | None = None, unit: str = "", ratio: float | None = None,
            ratio_to: str = "", peak: float | None = None, note: str = "") -> dict:
        row = {"section": section, "measurement": measurement, "value": _fmt(value), "unit": unit, "ratio": _fmt(ratio, 3),
               "ratio to": ratio_to, "peak GiB": _fmt(peak), "note": note}
        self.rows.append({**row, "_ratio": ratio})
        self.csv.writerow(row)
        self.csv_file.flush()
        self.line("| " + " | ".join(str(row[c]) for c in COLUMNS) + " |")
        return row

    def close(self) -> None:
        self.markdown.close()
        self.csv_file.close()


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


class Suite:
    """What every section shares: the options, the setting, the table, the clock."""

    def __init__(self, args: argparse.Namespace, setting: Setting, table: Table) -> None:
        self.args, self.setting, self.table = args, setting, table
        self.start = time.perf_counter()
        self.batch = args.batch

    def over_budget(self, section: str) -> bool:
        elapsed = time.perf_counter() - self.start
        if elapsed <= self.args.budget_s:
            return False
        self.table.add(section, "skipped", note=f"the time budget ran out ({elapsed:.0f} s > --budget-s {self.args.budget_s:g})")
        return True

    def peak_gib(self, fn: Callable[[], object]) -> float | None:
        """Run ``fn`` once; the memory it allocated at its peak above what was allocated before (CUDA only)."""
        if self.setting.device != "cuda":
            fn()
            return None
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**30

    def timed(self, fns: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
        return interleaved_times(fns, self.args.repeats, self.args.warmup)

    def release(self) -> None:
        gc.collect()
        if self.setting.device == "cuda":
            torch.cuda.empty_cache()


def versions() -> list[str]:
    lines = [f"python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}"]
    if torch.cuda.is_available():
        lines.append(f"GPU: {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
                     f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
    try:
        import triton
        lines.append(f"triton {triton.__version__}")
    except ImportError:
        lines.append("triton: not installed (torch.compile on CUDA needs it)")
    lines.append(f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    return lines


def recal_builder(name: str, size: int) -> Builder:
    return lambda: create_model(name, input_size=size)


def torchvision_builder(name: str) -> Builder:
    return lambda: torchvision.models.get_model(name)


def model_builder(name: str, size: int) -> Builder:
    """``torchvision.<name>`` for torchvision's network, otherwise a recal model name."""
    if name.startswith("torchvision."):
        return torchvision_builder(name.removeprefix("torchvision."))
    return recal_builder(name, size)


def _out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error)


def fitting_batch(suite: Suite, build: Builder) -> int:
    """The largest batch, from ``--batch`` down by halves, at which a train step of ``build()`` fits."""
    batch = suite.batch
    while True:
        try:
            step = train_step(build(), batch, suite.args.size, suite.setting)
            step()
            suite.setting.synchronize()
            return batch
        except RuntimeError as error:
            if not _out_of_memory(error) or batch == 1:
                raise
            batch //= 2
        finally:
            step = None
            suite.release()


def compare_networks(suite: Suite, section: str, builders: dict[str, Builder], baseline: str, mode: str = "train",
                     note: Callable[[str], str] = lambda name: "") -> dict[str, float]:
    """Images/s of each network, interleaved with ``baseline`` round by round; rows; name → ratio to the baseline."""
    step_of = train_step if mode == "train" else inference_step
    batch, size = suite.batch, suite.args.size
    steps, peaks = {}, {}
    for name, build in builders.items():
        steps[name] = step_of(build(), batch, size, suite.setting)
        peaks[name] = suite.peak_gib(steps[name])
    times = suite.timed(steps)
    ratios = {}
    for name in builders:
        ratio = statistics.median(b / t for t, b in zip(times[name], times[baseline]))
        ratios[name] = ratio
        suite.table.add(section, f"{name}, batch {batch}, {size}²", batch / statistics.median(times[name]),
                        f"{mode} img/s", ratio, baseline, peaks[name], note(name))
    steps.clear()
    suite.release()
    return ratios


def train_section(suite: Suite) -> dict[str, float]:
    size = suite.args.size
    heaviest = ("sknet50", "resnest50") if suite.setting.device == "cuda" else ()
    for name in heaviest:
        suite.batch = fitting_batch(suite, recal_builder(name, size))
    builders = {BASELINE: torchvision_builder("resnet50"), **{name: recal_builder(name, size) for name in GOAL_NETWORKS}}
    note = "" if suite.batch == suite.args.batch else f"--batch {suite.args.batch} did not fit {' or '.join(heaviest)}"
    return compare_networks(suite, "train, eager", builders, BASELINE, note=lambda name: note)


def inference_section(suite: Suite) -> dict[str, float]:
    size = suite.args.size
    builders = {f"fused {name}": (lambda name=name: fuse(create_model(name, input_size=size)))
                for name in ("resnet50", "srm_resnet50", "se_resnet50")}
    return compare_networks(suite, "inference, fused", builders, "fused resnet50", mode="inference")


def goals_section(suite: Suite, train: dict[str, float], inference: dict[str, float]) -> None:
    goals = [(f"{name} train", train.get(name), goal, BASELINE) for name, goal in TRAIN_GOALS.items()]
    name, goal = INFERENCE_GOAL
    goals.append((f"{name} inference", inference.get(name), goal, "fused resnet50"))
    for what, ratio, goal, baseline in goals:
        if ratio is None:
            suite.table.add("goals", f"{what} ≥ {goal:.2f}×", note="not measured")
            continue
        verdict = "met" if ratio >= goal else f"missed by {goal - ratio:.3f}"
        suite.table.add("goals", f"{what} ≥ {goal:.2f}×", ratio=ratio, ratio_to=baseline, note=verdict)


def nodes_section(suite: Suite) -> None:
    device, section = suite.setting.device, "fused nodes"
    listed = fused_paths(device)
    if not listed:
        suite.table.add(section, f"the table lists no node for {device}", note="the rows time the nodes switched on")
    for gate_name, path in GATE_NODES.items():
        for channels, size in stage_shapes(suite.args.tiny):
            times = block_node_times(gate_name, path, suite.batch, channels, size, suite.setting, suite.args.repeats,
                                     suite.args.warmup)
            ratio = node_speedup(times, path)
            suite.table.add(section, f"{gate_name} block end {suite.batch}×{channels}×{size}², {path}",
                            1e3 * statistics.median(times["all nodes"]), "ms fused", ratio, "plain composition",
                            note="fused faster" if ratio > 1 else "plain faster")
        suite.release()
    verdict: dict[str, list[float]] = {}
    for name, paths in NETWORK_NODES.items():
        times = network_node_times(name, paths, suite.batch, suite.args.size, suite.setting, suite.args.repeats,
                                   suite.args.warmup)
        for path in paths:
            ratio = node_speedup(times, path)
            verdict.setdefault(path, []).append(ratio)
            suite.table.add(section, f"{name} train step, batch {suite.batch}: {path} node on vs off",
                            suite.batch / statistics.median(times["all nodes"]), "train img/s", ratio,
                            f"{path} off", note="fused faster" if ratio > 1 else "plain faster")
        suite.release()
    faster = sorted(path for path, ratios in verdict.items() if statistics.median(ratios) > 1)
    agrees = set(faster) == set(listed) & set(verdict)
    suite.table.add(section, f"choice for {device}", note=f"measured faster: {faster or 'none'}; the table "
                    f"(recal/layers/kernels/fused_paths.py) lists {sorted(listed) or 'none'}"
                    + ("" if agrees else " — change the table"))


def more_networks_section(suite: Suite) -> None:
    size = suite.args.size
    builders = {BASELINE: torchvision_builder("resnet50"), **{name: recal_builder(name, size) for name in THROUGHPUT_NETWORKS}}
    compare_networks(suite, "train, eager, equal multiply-adds", builders, BASELINE)
    if suite.over_budget("recalibrated torchvision networks"):
        return
    compare_networks(suite, "recalibrated torchvision networks", {
        BASELINE: torchvision_builder("resnet50"),
        "resnet_from_torchvision(resnet50, srm)": lambda: resnet_from_torchvision(torchvision.models.resnet50(), "srm",
                                                                                  input_size=size),
        "recalibrate(resnet50, srm)": lambda: recalibrate(torchvision.models.resnet50(), "srm")}, BASELINE)
    for name in RECALIBRATED:
        if suite.over_budget("recalibrated torchvision networks"):
            return
        compare_networks(suite, "recalibrated torchvision networks", {
            f"torchvision {name}": torchvision_builder(name),
            f"recalibrate({name}, srm)": lambda name=name: recalibrate(torchvision.models.get_model(name), "srm")},
            f"torchvision {name}")


def compiled_section(suite: Suite) -> None:
    """Whole-model ``torch.compile``: compile time in the note, throughput against the compiled baseline."""
    names = suite.args.compiled
    size, compile_s = suite.args.size, {}

    def compiled(name: str) -> Builder:
        def build() -> torch.nn.Module:
            model = model_builder(name, size)()
            start = time.perf_counter()
            model = torch.compile(suite.setting.place(model))
            # the first step compiles forward and backward
            train_step(model, suite.batch, size, suite.setting)()
            suite.setting.synchronize()
            compile_s[name] = time.perf_counter() - start
            return model
        return build
    builders = {f"compiled {name}": compiled(name) for name in names}
    compare_networks(suite, "train, torch.compile", builders, f"compiled {names[0]}",
                     note=lambda label: f"compile + first step {compile_s[label.removeprefix('compiled ')]:.0f} s")


def kernels_section(suite: Suite) -> None:
    size, name = suite.args.size, "srm_resnet50"
    model = suite.setting.place(create_model(name, input_size=size))
    step = train_step(model, suite.batch, size, suite.setting)

    def with_kernels(mode: str) -> Callable[[], None]:
        def run() -> None:
            set_kernels(mode)
            try:
                step()
            finally:
                set_kernels("eager")
        return run
    start = time.perf_counter()
    with_kernels("compiled")()
    suite.setting.synchronize()
    warm = time.perf_counter() - start
    times = suite.timed({"eager": with_kernels("eager"), "compiled": with_kernels("compiled")})
    ratio = statistics.median(e / c for c, e in zip(times["compiled"], times["eager"]))
    auto = "compiled" if compile_available(suite.setting.device) else "eager"  # what kernels: auto picks for long fits
    verdict = "faster" if ratio > 1 else "slower"
    suite.table.add("recal compiled kernels", f"{name}, batch {suite.batch}: compiled kernels vs eager",
                    suite.batch / statistics.median(times["compiled"]), "train img/s", ratio, "eager kernels",
                    note=f"first step with compiling {warm:.0f} s; compiled {verdict}; kernels: auto picks {auto} "
                         f"on {suite.setting.device} for long fits (recal/tasks/kernels.py)")


# after the goals' sections, in the order of what the figures are for: the nodes' choice, whole-model
# compiling, then the other networks and recal's kernels (what a budget cut loses first)
SECTIONS: tuple[tuple[str, Callable[[Suite], object]], ...] = (
    ("fused nodes", nodes_section),
    ("torch.compile", compiled_section),
    ("more networks", more_networks_section),
    ("recal compiled kernels", kernels_section),
)


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Setting]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setting_options(parser)
    parser.add_argument("--batch", type=int, default=256, help="train batch; halved until the heaviest network fits")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=420, help="sections that would start later are skipped")
    parser.add_argument("--compiled", nargs="+", default=["torchvision.resnet50", "srm_resnet50", "se_resnet50"],
                        help="networks compiled whole (the first is the baseline): recal names or torchvision.<name>")
    parser.add_argument("--out", default="runs/gpu_suite", help="folder for gpu_suite.md and gpu_suite.csv")
    parser.add_argument("--tiny", action="store_true", help="seconds, not minutes: one round at batch 2, 64² (CI)")
    args = parser.parse_args(argv)
    args.warmup = 3
    if args.tiny:
        args.batch, args.size, args.repeats, args.warmup = 2, 64, 1, 1
    return args, apply_setting(parser, args)


def main(argv: list[str] | None = None) -> list[dict]:
    args, setting = parse(argv)
    set_kernels("eager")
    table = Table(Path(args.out))
    suite = Suite(args, setting, table)
    with using(setting):
        table.header(f"GPU suite ({setting.describe()})", versions())
        try:
            train = _guarded(suite, "train, eager", train_section) or {}
            inference = _guarded(suite, "inference, fused", inference_section) or {}
            goals_section(suite, train, inference)
            for section, run in SECTIONS:
                if not suite.over_budget(section):
                    _guarded(suite, section, run)
            table.line(f"\ntotal {time.perf_counter() - suite.start:.0f} s")
        finally:
            table.close()
    return table.rows


def _guarded(suite: Suite, section: str, run: Callable[[Suite], object]):
    """Run one section; an error becomes its row (the next sections still run)."""
    try:
        return run(suite)
    except Exception as error:  # a section that fails on some GPU or torch version must not lose the others
        suite.table.add(section, "error", note=f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
        suite.release()
        return None


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
