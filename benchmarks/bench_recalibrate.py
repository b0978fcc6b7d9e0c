"""A train step (forward, loss, backward, SGD; batch 8, 224²) of torchvision networks given SRM by recal,
against the same torchvision networks without it.

    python -m benchmarks.bench_recalibrate [--threads 2] [--repeats 5] [--batch 8] [--kernels compiled]
                                           [--device cpu|cuda] [--precision 32|bf16] [--channels-last] [--tiny]

Rows (time ratio to the plain torchvision network, measured in the same run):
``resnet_from_torchvision(resnet50(), "srm")`` — recal's ResNet with torchvision's weights, goal ≤ 1.05,
the same as ``srm_resnet50`` in bench_network.py; ``recalibrate(resnet50(), "srm")`` and
``recalibrate(…, "srm")`` of MobileNetV2, EfficientNet-B0 (its SE swapped for SRM) and RegNetX-400MF,
reported.
"""

from __future__ import annotations

import torch
import torchvision

from benchmarks.steps import train_step
from benchmarks.timing import Row, benchmark_args, compare, print_table
from recal.models import resnet_from_torchvision
from recal.models.recalibrate import recalibrate

CONVERTED_GOAL = 1.05
OTHERS = ("mobilenet_v2", "efficientnet_b0", "regnet_x_400mf")


def main(argv: list[str] | None = None) -> list[Row]:
    args = benchmark_args(__doc__, repeats=5, images=True, argv=argv)
    torch.manual_seed(0)

    def step(model: torch.nn.Module):
        return train_step(model, args.batch, args.size, args.setting)

    shape = f"batch {args.batch}, {args.size}²"
    resnets = compare({
        "torchvision": step(torchvision.models.resnet50()),
        "converted": step(resnet_from_torchvision(torchvision.models.resnet50(), "srm", input_size=args.size)),
        "recalibrated": step(recalibrate(torchvision.models.resnet50(), "srm")),
    }, "torchvision", args.repeats, args.warmup)
    converted, recalibrated = resnets["converted"], resnets["recalibrated"]
    rows = [
        Row(f"resnet_from_torchvision(resnet50, srm) train step ({shape}) / torchvision resnet50",
            1e3 * converted.baseline_s, 1e3 * converted.candidate_s, converted.ratio, f"≤ {CONVERTED_GOAL:.2f}",
            converted.ratio <= CONVERTED_GOAL),
        Row(f"recalibrate(resnet50, srm) train step ({shape}) / torchvision resnet50",
            1e3 * recalibrated.baseline_s, 1e3 * recalibrated.candidate_s, recalibrated.ratio, "(report)", None),
    ]
    for name in OTHERS:
        result = compare({"torchvision": step(torchvision.models.get_model(name)),
                          "recalibrated": step(recalibrate(torchvision.models.get_model(name), "srm"))},
                         "torchvision", args.repeats, args.warmup)["recalibrated"]
        rows.append(Row(f"recalibrate({name}, srm) train step ({shape}) / torchvision {name}",
                        1e3 * result.baseline_s, 1e3 * result.candidate_s, result.ratio, "(report)", None))
    print_table(f"Recalibrated torchvision networks (kernels: {args.kernels}, {args.setting.describe()})", rows)
    return rows


if __name__ == "__main__":
    main()
