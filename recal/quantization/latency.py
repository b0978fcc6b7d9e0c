"""Inference latency and serialized size, float vs int8, measured in the same process.

A latency is the median over ``repeats`` timed forwards under ``torch.inference_mode``,
after ``warmup`` untimed ones (first calls allocate and pick kernels); the thread count is
left as the process has it (``torch.set_num_threads`` is not touched). Float and int8 are
timed in alternation, one forward each per round, and the ratio int8 time / float time is the
median of the per-round ratios, so that a shared machine's slow spells hit both alike
(benchmarks/RESULTS.md times its baselines the same way): below 1 means the int8 network is faster.
A model's size is the byte length of its ``torch.save``-d state dict (int8 weights are packed
inside the converted modules' state).
"""

from __future__ import annotations

import io
import statistics
import time

import torch
from torch import Tensor, nn

BATCH_SIZES = (1, 32)


def example_batch(image: Tensor, batch_size: int) -> Tensor:
    """``batch_size`` copies of one (C, H, W) ``image`` as a contiguous batch."""
    return image.unsqueeze(0).expand(batch_size, *image.shape).contiguous()


@torch.inference_mode()
def paired_latency(baseline: nn.Module, candidate: nn.Module, x: Tensor, repeats: int = 20,
                   warmup: int = 3) -> tuple[float, float, float]:
    """Median seconds of ``baseline(x)`` and ``candidate(x)``, timed in alternation, and the median per-round ratio."""
    baseline.eval(), candidate.eval()
    for _ in range(warmup):
        baseline(x), candidate(x)
    base_times, times = [], []
    for _ in range(repeats):
        for model, record in ((baseline, base_times), (candidate, times)):
            start = time.perf_counter()
            model(x)
            record.append(time.perf_counter() - start)
    ratio = statistics.median(t / b for t, b in zip(times, base_times))
    return statistics.median(base_times), statistics.median(times), ratio


def paired_latencies(baseline: nn.Module, candidate: nn.Module, image: Tensor, repeats: int = 20, warmup: int = 3,
                     batch_sizes: tuple[int, ...] = BATCH_SIZES) -> dict[int, tuple[float, float, float]]:
    """:func:`paired_latency` at each batch size in ``batch_sizes`` (batches of copies of one image)."""
    return {b: paired_latency(baseline, candidate, example_batch(image, b), repeats, warmup) for b in batch_sizes}


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: the model's serialized size."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes
