"""The int8 study of ``python -m recal.quantize``: every checkpoint under every variant, tables and figures.

For each checkpoint (a ``.ckpt`` or a run folder, rebuilt with its config by
:func:`recal.analysis.runs.load_run`): the float network is evaluated once on the
validation set; then for each variant (:mod:`recal.quantization.variants`) an int8 copy is
calibrated on the first ``calibration_batches`` training batches (or fine-tuned, ``qat``),
converted, evaluated on the same images, timed against the float network at batch 1 and
32 and its state dict measured. The float network of the latency and size columns is the
fused one (BatchNorm merged: what one would deploy in float), so the ratios show what int8
adds on top of fusion. Optionally (``sensitivity``) every gated block is quantized alone.

Writes ``quantization.{csv,md}``, ``quantization.{png,pdf}`` (top-1 drop per network and
variant) and, with the sensitivity, ``sensitivity.{csv,md,png,pdf}``.

Only single-domain classification checkpoints apply: a :class:`~recal.tasks.ClassificationTask`
(or a subclass whose forward is its ``.model`` on an image batch) — not a multi-domain task
(per-domain gates chosen per batch), a texture task evaluating several crops per image, or a
style-transfer, detection or segmentation task.
"""

from __future__ import annotations

import math
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
from rich.console import Console
from rich.progress import Progress
from torch import Tensor, nn

from recal.analysis import tables
from recal.analysis.runs import LoadedRun, checkpoint_file, load_run, unique_labels
from recal.errors import InvalidOptionError
from recal.models.registry import MODULES
from recal.quantization.evaluation import compare, float_reference
from recal.quantization.flow import quantizable_copy, quantize, quiet_torch_ao
from recal.quantization.latency import BATCH_SIZES, paired_latencies, state_dict_bytes
from recal.quantization.sensitivity import block_sensitivity, gated_block_names
from recal.quantization.variants import (DESCRIPTIONS, VARIANTS, check_variants, default_mapping, not_applicable,
                                        same_as_int8_gates)

CSV_COLUMNS = ("model", "family", "checkpoint", "variant", "note", "fp32_acc1", "int8_acc1", "drop_acc1", "fp32_acc5",
               "int8_acc5", "drop_acc5", "agreement", "val_images", "calibration_batches",
               *(f"{kind}_ms_b{b}" for b in BATCH_SIZES for kind in ("fp32", "int8")),
               *(f"latency_ratio_b{b}" for b in BATCH_SIZES), "fp32_bytes", "int8_bytes", "size_ratio")


EXPECTED_TASK = "a single-domain classification checkpoint (ClassificationTask, or TextureTask with eval_crops 1)"


def classifier(run: LoadedRun) -> nn.Module:
    """The classification network of ``run`` (``task.model``); an InvalidOptionError for any other task."""
    from recal.tasks.classification import ClassificationTask
    from recal.tasks.multi_domain import MultiDomainTask
    from recal.tasks.texture import TextureTask

    task = run.task
    expected = EXPECTED_TASK
    if not isinstance(task, ClassificationTask) or isinstance(task, MultiDomainTask):
        raise InvalidOptionError(f"{run.checkpoint} is a {type(task).__name__} checkpoint; "
                                 f"quantization needs {expected}")
    if isinstance(task, TextureTask) and task.hparams.eval_crops != 1:
        raise InvalidOptionError(f"{run.checkpoint} evaluates {task.hparams.eval_crops} crops per image; "
                                 f"quantization needs {expected} (override with --config)")
    return task.model


def check_checkpoint_task(path: str, which: str = "best") -> None:
    """Refuse, before rebuilding anything, a checkpoint whose saved task class is not a classification one."""
    from recal.deploy.classifier import saved_task_class
    from recal.tasks.classification import ClassificationTask
    from recal.tasks.multi_domain import MultiDomainTask

    ckpt = checkpoint_file(path, which)
    task_class, _ = saved_task_class(ckpt)
    if task_class is None:
        return  # written without LightningCLI's class path: the rebuilt task is checked instead
    if not issubclass(task_class, ClassificationTask) or issubclass(task_class, MultiDomainTask):
        raise InvalidOptionError(f"{ckpt} is a {task_class.__name__} checkpoint; quantization needs {EXPECTED_TASK}")


def gate_family(model: nn.Module) -> str:
    """The recalibration modules in ``model`` by registry name (``srm``; ``none`` for a plain network)."""
    kinds = {type(m) for m in model.modules()}
    names = [name for name, cls in MODULES.items() if cls in kinds]
    return "+".join(names) if names else "none"


def check_options(variants: Sequence[str], calibration_batches: int, qat_epochs: int, qat_batches: Optional[int],
                  limit_batches: Optional[int], latency_repeats: int) -> None:
    """Reject a bad option before anything is loaded, naming it and what was expected."""
    check_variants(list(variants))
    if calibration_batches < 1:
        raise InvalidOptionError(f"--calibration_batches {calibration_batches}: expected at least 1 training batch")
    if "qat" in variants and qat_epochs < 1:
        raise InvalidOptionError(f"--qat_epochs {qat_epochs}: expected at least 1 epoch for the qat variant")
    for option, value in (("--qat_batches", qat_batches), ("--limit_batches", limit_batches)):
        if value is not None and value < 1:
            raise InvalidOptionError(f"{option} {value}: expected a positive number of batches (or leave it unset)")
    if latency_repeats < 1:
        raise InvalidOptionError(f"--latency_repeats {latency_repeats}: expected at least 1")


def train_loader(datamodule: Any) -> Any:
    """The training loader of ``datamodule`` (its augmentation included, as training saw the data)."""
    datamodule.setup("fit")
    return datamodule.train_dataloader()


def calibration_inputs(datamodule: Any, count: int) -> list[Tensor]:
    """The input tensors of the first ``count`` training batches; an error when there are fewer."""
    batches = [batch[0] for batch in islice(train_loader(datamodule), count)]
    if len(batches) < count:
        raise InvalidOptionError(f"--calibration_batches {count}: the training set has only {len(batches)} batches")
    return batches


def epoch_batches(datamodule: Any, limit: Optional[int]) -> Callable[[], Iterator[tuple[Tensor, Tensor]]]:
    """A callable giving one epoch of ``(x, y)`` training batches (the first ``limit`` when given)."""
    def epoch() -> Iterator[tuple[Tensor, Tensor]]:
        for batch in islice(train_loader(datamodule), limit):
            yield batch[0], batch[1]
    return epoch


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def study_checkpoint(run: LoadedRun, label: str, variants: Sequence[str], calibration_batches: int, qat_epochs: int,
                     qat_batches: Optional[int], qat_lr: float, sensitivity: bool, limit_batches: Optional[int],
                     latency_repeats: int, progress: Progress,
                     observer: str = "histogram") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The study's rows for one checkpoint (one per variant) and its per-block sensitivity rows."""
    model = classifier(run).cpu().eval()
    num_classes = run.task.hparams.num_classes
    datamodule = run.datamodule
    calibration = calibration_inputs(datamodule, calibration_batches)
    reference = float_reference(model, datamodule, num_classes, limit_batches, progress, f"{label} fp32")
    with quiet_torch_ao():
        float_fused = quantizable_copy(model, label)
    image = calibration[0][0]
    fp32_bytes = state_dict_bytes(float_fused)
    common = {"model": label, "family": gate_family(model), "checkpoint": str(run.checkpoint),
              "fp32_acc1": reference.acc1, "fp32_acc5": reference.acc5, "val_images": len(reference.predictions),
              "calibration_batches": calibration_batches}
    rows = []
    for variant in variants:
        progress.update(progress.task_ids[0], description=f"{label}: {variant}")
        reason = not_applicable(variant, float_fused)
        if reason:
            rows.append({**common, "variant": variant, "note": reason})
            progress.advance(progress.task_ids[0])
            continue
        int8 = quantize(model, variant, calibration, label, epoch_batches(datamodule, qat_batches), qat_epochs,
                        qat_lr, progress, observer)
        scores = compare(int8, reference, datamodule, num_classes, limit_batches, progress, f"{label} {variant} int8")
        times = paired_latencies(float_fused, int8, image, latency_repeats)
        int8_bytes = state_dict_bytes(int8)
        row = {**common, "variant": variant, "note": same_as_int8_gates(variant, float_fused) or "",
               "int8_acc1": scores["acc1"], "drop_acc1": reference.acc1 - scores["acc1"],
               "int8_acc5": scores["acc5"], "drop_acc5": reference.acc5 - scores["acc5"],
               "agreement": scores["agreement"]}
        for b in BATCH_SIZES:
            fp32_s, int8_s, row[f"latency_ratio_b{b}"] = times[b]
            row[f"fp32_ms_b{b}"], row[f"int8_ms_b{b}"] = 1e3 * fp32_s, 1e3 * int8_s
        row.update(fp32_bytes=fp32_bytes, int8_bytes=int8_bytes, size_ratio=_ratio(int8_bytes, fp32_bytes))
        rows.append(row)
        progress.advance(progress.task_ids[0])
    blocks: list[dict[str, Any]] = []
    if sensitivity and gated_block_names(model):
        progress.update(progress.task_ids[0], description=f"{label}: per-block sensitivity")
        blocks = block_sensitivity(model, reference, calibration, datamodule, num_classes, label, limit_batches,
                                   progress, observer)
    return [{key: row.get(key) for key in CSV_COLUMNS} for row in rows], blocks


def quantization_study(checkpoints: Sequence[str], out: Path, config: Optional[str] = None, which: str = "best",
                       variants: Sequence[str] = VARIANTS, calibration_batches: int = 8, qat_epochs: int = 1,
                       qat_batches: Optional[int] = None, qat_lr: float = 1e-3, sensitivity: bool = True,
                       limit_batches: Optional[int] = None, latency_repeats: int = 20,
                       labels: Optional[Sequence[str]] = None, observer: str = "histogram") -> list[dict[str, Any]]:
    """Run the study on every checkpoint; write ``quantization.{csv,md,png,pdf}`` (and ``sensitivity.*``) in ``out``."""
    check_options(variants, calibration_batches, qat_epochs, qat_batches, limit_batches, latency_repeats)
    default_mapping(observer)  # an unknown observer is refused before anything is loaded
    if labels and len(labels) != len(checkpoints):
        raise InvalidOptionError(f"--labels has {len(labels)} entries for {len(checkpoints)} checkpoints")
    rows: list[dict[str, Any]] = []
    block_rows: list[dict[str, Any]] = []
    with Progress(console=Console(stderr=True), transient=True) as progress:
        progress.add_task("loading checkpoints", total=len(checkpoints) * len(variants))
        for path in checkpoints:
            check_checkpoint_task(path, which)
        runs = [load_run(path, config, which) for path in checkpoints]
        for run in runs:
            classifier(run)  # a checkpoint of another task is refused before any work
        names = list(labels) if labels else unique_labels([r.label for r in runs], [r.checkpoint for r in runs])
        for run, name in zip(runs, names):
            mine, blocks = study_checkpoint(run, name, variants, calibration_batches, qat_epochs, qat_batches, qat_lr,
                                            sensitivity, limit_batches, latency_repeats, progress, observer)
            rows += mine
            block_rows += blocks
    write_study(rows, out, calibration_batches, limit_batches, qat_epochs, qat_batches, observer)
    if sensitivity:
        write_sensitivity(block_rows, [n for n, run in zip(names, runs) if not gated_block_names(classifier(run))],
                          out, limit_batches)
    return rows


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def _times(value: Any) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}×"


def write_study(rows: list[dict[str, Any]], out: Path, calibration_batches: int, limit_batches: Optional[int],
                qat_epochs: int, qat_batches: Optional[int], observer: str = "histogram") -> None:
    """``quantization.csv`` (every column), ``quantization.md`` (the readable subset) and the drop figure."""
    from recal.analysis import plots

    tables.write_csv(rows, out / "quantization.csv")
    shown = []
    for r in rows:
        shown.append({"model": r["model"], "variant": r["variant"], "fp32 top-1": _pct(r["fp32_acc1"]),
                      "int8 top-1": _pct(r["int8_acc1"]),
                      "drop (pp)": "—" if r["drop_acc1"] is None else f"{100 * r['drop_acc1']:+.2f}",
                      "int8 top-5": _pct(r["int8_acc5"]), "agreement (%)": _pct(r["agreement"]),
                      **{f"latency int8/fp32, batch {b}": _times(r[f"latency_ratio_b{b}"]) for b in BATCH_SIZES},
                      "size int8/fp32": _times(r["size_ratio"]), "note": r["note"] or ""})
    subset = "the whole validation set" if limit_batches is None else f"the first {limit_batches} validation batches"
    qat = f"{qat_epochs} epoch(s)" + ("" if qat_batches is None else f" of {qat_batches} batches")
    note = (f"Post-training static int8 quantization (torch.ao FX graph mode, x86 backend), calibrated on "
            f"{calibration_batches} training batches ({observer} activation observer), evaluated on {subset}. "
            "Drop = fp32 − int8 top-1 in "
            f"percentage points; agreement = share of images whose int8 argmax equals the fp32 argmax. Latency: "
            f"int8 / fp32 time (BatchNorm-fused fp32), timed in alternation in one process, median of the "
            f"per-round ratios; below 1× is faster. Size: "
            f"serialized state dict. Variants: "
            + "; ".join(f"{v} — {d}" for v, d in DESCRIPTIONS.items()) + f" (qat: {qat}, SGD). All columns: "
            "quantization.csv.")
    tables.write_markdown(shown, out / "quantization.md", "int8 post-training quantization", note)
    models = list(dict.fromkeys(r["model"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    drops = np.full((len(models), len(variants)), np.nan)
    for r in rows:
        if r["drop_acc1"] is not None:
            drops[models.index(r["model"]), variants.index(r["variant"])] = 100 * r["drop_acc1"]
    plots.grouped_drop_bars(models, variants, drops, "top-1 drop fp32 → int8 (pp)",
                            "int8 accuracy drop per network and variant", out / "quantization.png")


def write_sensitivity(rows: list[dict[str, Any]], skipped: list[str], out: Path, limit_batches: Optional[int]) -> None:
    """``sensitivity.csv``, ``sensitivity.md`` and the per-block figure (none without a gated network)."""
    from recal.analysis import plots

    subset = "the whole validation set" if limit_batches is None else f"the first {limit_batches} validation batches"
    note = (f"One gated block at a time quantized to int8 (default x86 mapping inside the block: convolutions, gate, "
            f"x·gate multiply, residual addition), the rest of the network float32; top-1 on {subset}; drop in "
            "percentage points."
            + "".join(f"\n\n{name}: no gated block (not applicable)" for name in skipped))
    shown = [{"model": r["model"], "block": r["block"], "fp32 top-1": _pct(r["fp32_acc1"]),
              "int8-block top-1": _pct(r["int8_acc1"]), "drop (pp)": f"{100 * r['drop_acc1']:+.2f}",
              "agreement (%)": _pct(r["agreement"])} for r in rows]
    if not rows:
        (out / "sensitivity.md").write_text(f"# Per-block int8 sensitivity\n\n{note.strip()}\n")
        return
    tables.write_markdown(shown, out / "sensitivity.md", "Per-block int8 sensitivity", note)
    tables.write_csv(rows, out / "sensitivity.csv")
    models = list(dict.fromkeys(r["model"] for r in rows))
    blocks = {m: [r["block"] for r in rows if r["model"] == m] for m in models}
    drops = {m: [100 * r["drop_acc1"] for r in rows if r["model"] == m] for m in models}
    plots.per_block_lines(blocks, drops, "top-1 drop (pp)", "int8 sensitivity per gated block", out / "sensitivity.png")
