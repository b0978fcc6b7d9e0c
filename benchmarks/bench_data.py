"""The data pipelines: the speed of the ImageNet-style loader, the memory of the CIFAR-10 one.

1. ImageNet-style training pipeline (recal's ImageNetDataModule train loader: robust loading,
   per-sample seeded augmentation, resumable sampler) on 512 JPEGs with 2 workers, against a
   plain ``torchvision.datasets.ImageFolder`` + DataLoader with the same transforms: images/s,
   median of 5 epochs each, interleaved. Goal ≥ 0.95×.
2. CIFAR-10 datamodule peak memory (main process + workers) over one training epoch and one
   validation pass on a full-size synthetic CIFAR-10 (50,000 + 10,000 images in the real
   pickle layout). Goal < 1 GiB. Summed RSS, summed PSS and the PSS the data adds are
   printed; the goal is judged on what the data adds, measured as PSS: importing this CUDA
   build of torch with Lightning alone takes ~1 GiB RSS before any data exists, and summed
   RSS counts the pages the forked workers share with the main process (torch itself, the
   copy-on-write dataset array) once per worker.

    python -m benchmarks.bench_data [--workers 2] [--images 512] [--epochs 5] [--device cpu|cuda] [--tiny]

``--device cuda`` copies every batch to the GPU as training would (pinned memory, non-blocking
copies, synchronised at the end of each epoch) in both pipelines; ``--tiny`` (CI) times 64 images
for one epoch and measures a CIFAR-10 of 2,000 + 500 images (the memory goal then says little).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import os
import subprocess
import sys
import torch
import torchvision
from torch.utils.data import DataLoader

from benchmarks.timing import Row, print_table
from recal.data import CIFAR10DataModule, ImageNetDataModule
from recal.data.transforms import imagenet_train
from tests.fixtures import write_image_folder


def _epoch_rate(loader: DataLoader, device: str) -> float:
    start, seen = time.perf_counter(), 0
    for x, _ in loader:
        if device != "cpu":
            x = x.to(device, non_blocking=True)
        seen += x.shape[0]
    if device == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def image_pipeline(images: int, workers: int, epochs: int, device: str = "cpu", batch: int = 32) -> Row:
    root = Path(tempfile.mkdtemp()) / "imagenet"
    classes = 8
    write_image_folder(root, classes=classes, per_class=images // classes, size=(375, 500), splits=("train", "val"))
    datamodule = ImageNetDataModule(root, num_classes=classes, batch_size=batch, num_workers=workers)
    datamodule.setup("fit")
    ours = datamodule.train_dataloader()
    plain_set = torchvision.datasets.ImageFolder(str(root / "train"), transform=imagenet_train(224))
    plain = DataLoader(plain_set, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                       persistent_workers=workers > 0, pin_memory=torch.cuda.is_available())
    rates: dict[str, list[float]] = {"plain": [], "ours": []}
    for epoch in range(epochs + 1):
        ours.sampler.set_epoch(epoch)
        for name, loader in (("plain", plain), ("ours", ours)):
            rate = _epoch_rate(loader, device)
            if epoch:  # the first epoch starts the workers
                rates[name].append(rate)
    base, mine = statistics.median(rates["plain"]), statistics.median(rates["ours"])
    ratio = mine / base
    return Row(f"ImageNet train pipeline, {images} JPEGs, {workers} workers (img/s; time columns = ms/img)",
               1e3 / base, 1e3 / mine, ratio, "≥ 0.95× the images/s", ratio >= 0.95)


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _tree_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) summed over ``pid`` and all its descendants (Linux /proc), in bytes.

    Summed RSS counts every page shared by the forked workers (torch's libraries, the
    copy-on-write dataset array) once per process; PSS splits each shared page between
    its sharers, so its sum is the memory the loader really occupies.
    """
    rss = pss = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
        except OSError:
            continue
        fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in rollup.splitlines()[1:]}
        rss, pss = rss + fields.get("Rss", 0), pss + fields.get("Pss", 0)
        todo += _children(current)
    return rss, pss


def cifar_rss(workers: int, n_train: int = 50_000, n_test: int = 10_000) -> Row:
    root = Path(tempfile.mkdtemp())
    # written by another process, so that making 60,000 images does not count against the loader
    subprocess.run([sys.executable, "-c", f"from tests.fixtures import write_cifar10; "
                    f"write_cifar10({str(root)!r}, n_train={n_train}, n_test={n_test})"], check=True)
    process = os.getpid()
    baseline = _tree_memory(process)[1]  # torch + Lightning imported, no data yet
    peak = list(_tree_memory(process))
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            rss, pss = _tree_memory(process)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    datamodule = CIFAR10DataModule(root, verify_md5=False, batch_size=128, num_workers=workers)
    datamodule.setup("fit")
    for _ in datamodule.train_dataloader():
        pass
    for _ in datamodule.val_dataloader():
        pass
    stop.set()
    watcher.join()
    rss, pss, added = peak[0] / 2**30, peak[1] / 2**30, (peak[1] - baseline) / 2**30
    print(f"CIFAR-10 memory: process before the datamodule {baseline / 2**30:.2f} GiB PSS; peak over main + "
          f"{workers} workers: summed RSS {rss:.2f} GiB, summed PSS {pss:.2f} GiB, added by the data {added:.2f} GiB")
    return Row(f"CIFAR-10 datamodule memory, {n_train}+{n_test} images, main + {workers} workers "
               f"(GiB: peak summed PSS | PSS added by the data)", pss, added, added, "added < 1 GiB", added < 1.0)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the batches go")
    parser.add_argument("--tiny", action="store_true", help="seconds, not minutes (CI)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch (torch.cuda.is_available() is False)")
    cifar = (2_000, 500) if args.tiny else (50_000, 10_000)
    if args.tiny:
        args.images, args.epochs = 64, 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # memory first: the image benchmark's persistent workers would otherwise count against CIFAR
        rows = [cifar_rss(args.workers, *cifar), image_pipeline(args.images, args.workers, args.epochs, args.device)]
    finally:
        torch.set_num_threads(threads)
    print_table("Data pipelines", rows)
    return rows


if __name__ == "__main__":
    main()
