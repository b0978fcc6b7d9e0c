"""recal's fused training nodes against the plain composition, per gate, at ResNet-50's four stage shapes.

    python -m benchmarks.bench_nodes [--threads 2] [--repeats 7] [--batch 8] [--kernels eager]
                                     [--device cpu|cuda] [--precision 32|bf16] [--channels-last] [--tiny]

One gated block end in training (forward and backward of BatchNorm, gate, rescale, shortcut
addition, ReLU): with every fused node the device's table may list
(:mod:`recal.layers.kernels.fused_paths`) against the same with the gate's node off — SRM, SE
and ECA's ``pooled_block_end``, GE and CMPE-SE's ``gated_add``; then a whole ResNet-50 train
step (at ``--size``) with all nodes against the same with one node off. The ratio is the time
with the node off over the time with it on (above 1: the node is faster); these rows are the
measurements behind the table's entries.
"""

from __future__ import annotations

import statistics
from typing import Callable, Iterable

import torch

from benchmarks.steps import train_step
from benchmarks.timing import Row, Setting, benchmark_args, interleaved_times, print_table
from recal.layers import block_end
from recal.layers.kernels import fused_paths, using_fused_paths
from recal.layers.kernels.fused_paths import PATHS
from recal.models import create_model, create_recalibration

STAGES = ((256, 56), (512, 28), (1024, 14), (2048, 7))  # ResNet-50's gated block ends: channels, map size
GATE_NODES = {"srm": "pooled_block_end", "se": "pooled_block_end", "eca": "pooled_block_end", "ge": "gated_add",
              "cmpe_se": "gated_add"}
NETWORK_NODES = {"srm_resnet50": ("pooled_block_end",), "se_resnet50": ("pooled_block_end",),
                 "eca_resnet50": ("pooled_block_end",), "ge_resnet50": ("gated_add", "global_dot")}


def block_end_step(gate_name: str, batch: int, channels: int, size: int, setting: Setting) -> Callable[[], None]:
    """Forward + backward of one gated block end (BatchNorm, gate, rescale, shortcut, ReLU) in training."""
    options = {"spatial_size": size} if gate_name == "ge" else {}
    gate = setting.place(create_recalibration(gate_name, channels, **options).train())
    norm = setting.place(torch.nn.BatchNorm2d(channels).train())
    z = setting.tensor(torch.randn(batch, channels, size, size)).requires_grad_()
    shortcut = setting.tensor(torch.randn(batch, channels, size, size)).requires_grad_()

    def run() -> None:
        z.grad = shortcut.grad = None
        with setting.autocast():
            y = block_end(z, norm=norm, gate=gate, shortcut=shortcut, relu=True)
        y.backward(torch.ones_like(y))
    return run


def with_nodes(paths: Iterable[str], step: Callable[[], None], device_type: str) -> Callable[[], None]:
    """``step`` run with exactly ``paths``' fused nodes on ``device_type``."""
    paths = frozenset(paths)

    def run() -> None:
        with using_fused_paths(device_type, paths):
            step()
    return run


def stage_shapes(tiny: bool) -> list[tuple[int, int]]:
    return [(c // 16, max(s // 8, 1)) for c, s in STAGES] if tiny else list(STAGES)


def block_node_times(gate_name: str, path: str, batch: int, channels: int, size: int, setting: Setting,
                     repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per forward + backward of one gated block end: ``"all nodes"``, and ``path`` (that node off)."""
    step = block_end_step(gate_name, batch, channels, size, setting)
    return interleaved_times({"all nodes": with_nodes(PATHS, step, setting.device),
                              path: with_nodes(set(PATHS) - {path}, step, setting.device)}, repeats, warmup)


def network_node_times(name: str, paths: Iterable[str], batch: int, size: int, setting: Setting, repeats: int,
                       warmup: int) -> dict[str, list[float]]:
    """Seconds per train step of network ``name``: ``"all nodes"``, and ``path`` (that node off) for each path."""
    step = train_step(create_model(name, input_size=size), batch, size, setting)
    fns = {"all nodes": with_nodes(PATHS, step, setting.device),
           **{path: with_nodes(set(PATHS) - {path}, step, setting.device) for path in paths}}
    return interleaved_times(fns, repeats, warmup)


def node_speedup(times: dict[str, list[float]], path: str) -> float:
    """Median over rounds of (time with ``path``'s node off) / (time with every node on)."""
    return statistics.median(off / on for on, off in zip(times["all nodes"], times[path]))


def main(argv: list[str] | None = None) -> list[Row]:
    args = benchmark_args(__doc__, images=True, argv=argv)
    setting, rows = args.setting, []
    for gate_name, path in GATE_NODES.items():
        for channels, size in stage_shapes(args.tiny):
            times = block_node_times(gate_name, path, args.batch, channels, size, setting, args.repeats, args.warmup)
            rows.append(Row(f"{gate_name} block end {args.batch}×{channels}×{size}², {path} node / plain",
                            1e3 * statistics.median(times[path]), 1e3 * statistics.median(times["all nodes"]),
                            node_speedup(times, path),
                            f"listed for {setting.device}" if path in fused_paths(setting.device) else "not listed",
                            None))
    for name, paths in NETWORK_NODES.items():
        times = network_node_times(name, paths, args.batch, args.size, setting, args.repeats, args.warmup)
        for path in paths:
            rows.append(Row(f"{name} train step (batch {args.batch}, {args.size}²), {path} node / plain",
                            1e3 * statistics.median(times[path]), 1e3 * statistics.median(times["all nodes"]),
                            node_speedup(times, path),
                            f"listed for {setting.device}" if path in fused_paths(setting.device) else "not listed",
                            None))
    print_table(f"Fused nodes against the plain composition (kernels: {args.kernels}, {setting.describe()}; "
                "ratio: time with the node off / time with it on)", rows)
    return rows


if __name__ == "__main__":
    main()
