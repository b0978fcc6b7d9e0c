"""Office-Home (Venkateswara et al., CVPR 2017) for multi-domain learning.

On disk: ``root/<Domain>/<class>/<image>`` for the domains ``Art``, ``Clipart``,
``Product`` and ``Real World`` (the official name, with a space; ``Real_World`` is
accepted too), 65 classes, 15,588 images. In configs and metric keys the fourth domain is
always ``Real_World``. Office-Home ships no train/test split: we split every domain
**80 / 20, stratified by class, seeded** (``test_fraction``, ``split_seed``; scikit-learn
``train_test_split``) — our choice, since the SRM paper's protocol is not published.

Batches are ``(x, y, domain)``: domain ids index :attr:`OfficeHomeDataModule.domains`.
Modes: ``joint`` trains on the 80 % parts of every domain and validates / tests on the
20 % parts; ``leave_one_out`` trains on the 80 % parts of the other domains and validates /
tests on their 20 % parts plus *all* images of ``held_out``. ``domain_balanced`` makes
every training batch hold ``batch_size / D`` samples of each training domain (smaller
domains are revisited more often), so each domain-specific gate sees a real sub-batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset, default_collate

from recal.data.base import ClassificationDataModule, Transform
from recal.data.images import IMAGE_EXTENSIONS, find_class_folders, load_rgb
from recal.data.sampling import EpochSeededSampler
from recal.data.transforms import imagenet_eval, imagenet_train
from recal.errors import DatasetNotFoundError, InvalidOptionError

__all__ = ["DOMAINS", "DomainBalancedSampler", "DomainImageList", "DomainName", "OfficeHomeDataModule",
           "collate_with_domain", "domain_folder"]

DOMAINS = ("Art", "Clipart", "Product", "Real_World")
DomainName = Literal["Art", "Clipart", "Product", "Real_World"]
# Folder names accepted on disk for each domain, official first.
DISK_NAMES = {"Art": ("Art",), "Clipart": ("Clipart",), "Product": ("Product",),
              "Real_World": ("Real World", "Real_World")}


def domain_folder(root: Path, domain: str) -> Path:
    """The folder of ``domain`` under ``root`` (``Real World`` or ``Real_World``), or an error naming it."""
    for name in DISK_NAMES[domain]:
        if (root / name).is_dir():
            return root / name
    accepted = " or ".join(f"'{root / name}'" for name in DISK_NAMES[domain])
    raise DatasetNotFoundError(f"Office-Home domain {domain!r} not found: expected the folder {accepted}")


class DomainImageList(Dataset):
    """``(path, class, domain)`` samples; items ``(image, (class, domain))``; ``classes`` names the classes."""

    def __init__(self, samples: list[tuple[Path, int, int]], classes: list[str] | None = None) -> None:
        self.samples = samples
        self.classes = classes

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, tuple[int, int]]:
        path, target, domain = self.samples[index]
        return load_rgb(path), (target, domain)

    def domain_ids(self) -> np.ndarray:
        """The domain id of every sample, in order."""
        return np.array([d for _, _, d in self.samples], dtype=np.int64)


def collate_with_domain(batch: list[tuple[Any, tuple[int, int]]]) -> Any:
    """Collate ``(x, (y, domain))`` items into the batch ``(x, y, domain)``."""
    return default_collate([(x, y, d) for x, (y, d) in batch])


class DomainBalancedSampler(EpochSeededSampler):
    """Training batches with ``batch_size / D`` samples of each of the D domains present.

    Each domain's samples are drawn from a fresh seeded permutation, cycled when a small
    domain runs out, so the order is a pure function of (seed, epoch) like
    :class:`EpochSeededSampler`'s (whose ``(epoch, index)`` items and DDP behaviour it
    keeps). An epoch has as many full batches as the training set fills; rank r takes
    global batches r, r + R, …; ``interleave_ranks`` keeps the global batch order, which is
    exactly the order R ranks would see.
    """

    def __init__(self, domain_ids: Sequence[int], batch_size: int, num_replicas: int = 1, rank: int = 0,
                 seed: int = 0, interleave_ranks: int = 1) -> None:
        super().__init__(len(domain_ids), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=True, interleave_ranks=interleave_ranks, batch_size=batch_size)
        ids = np.asarray(domain_ids)
        self.groups = [np.flatnonzero(ids == d) for d in np.unique(ids)]
        if batch_size % len(self.groups):
            raise InvalidOptionError(
                f"data.batch_size={batch_size} with data.domain_balanced: the batch must split evenly "
                f"over the {len(self.groups)} training domains")
        ranks = num_replicas * interleave_ranks
        self.batches_per_rank = len(ids) // (batch_size * ranks)

    def indices(self) -> list[int]:
        rng = np.random.default_rng([self.seed % 2**32, self.epoch])
        ranks = self.num_replicas * self.interleave_ranks
        total = self.batches_per_rank * ranks
        per = self.batch_size // len(self.groups)
        streams = [_cycled_permutation(rng, group, total * per) for group in self.groups]
        batches = [np.concatenate([s[k * per:(k + 1) * per] for s in streams]) for k in range(total)]
        mine = batches if self.interleave_ranks > 1 else batches[self.rank::self.num_replicas]
        return [int(i) for batch in mine for i in batch]

    def __len__(self) -> int:
        return self.batches_per_rank * self.batch_size * self.interleave_ranks


def _cycled_permutation(rng: np.random.Generator, group: np.ndarray, length: int) -> np.ndarray:
    rounds = -(-length // len(group))
    return np.concatenate([rng.permutation(group) for _ in range(rounds)])[:length]


class OfficeHomeDataModule(ClassificationDataModule):
    """Office-Home's domains with a seeded stratified 80 / 20 split per domain; batches ``(x, y, domain)``.

    ``domains`` (default all four, in this order) fixes the domain ids; ``mode`` is
    ``joint`` or ``leave_one_out`` (then ``held_out`` names the test domain). ``num_classes``
    (65) is checked against the class folders, which must be the same in every domain.
    Transforms: RandomResizedCrop(``image_size``) + flip; resize ``resize_size`` + centre crop.
    """

    def __init__(
        self,
        root: str | Path = "data/office_home",
        domains: list[DomainName] = list(DOMAINS),
        mode: Literal["joint", "leave_one_out"] = "joint",
        held_out: Optional[DomainName] = None,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        domain_balanced: bool = False,
        num_classes: int = 65,
        batch_size: int = 64,
        num_workers: int = 4,
        image_size: int = 224,
        resize_size: int = 256,
        seed: int = 0,
        interleave_ranks: int = 1,
    ) -> None:
        super().__init__(num_classes=num_classes, batch_size=batch_size, num_workers=num_workers, seed=seed,
                         interleave_ranks=interleave_ranks)
        domains = list(domains)
        unknown = [d for d in domains if d not in DOMAINS]
        if unknown or not domains or len(set(domains)) != len(domains):
            raise InvalidOptionError(f"data.domains={domains}; expected distinct names from {list(DOMAINS)}")
        if mode == "leave_one_out":
            if held_out not in domains or len(domains) < 2:
                raise InvalidOptionError(
                    f"data.held_out={held_out!r}; leave_one_out needs one of data.domains={domains} "
                    f"(and at least one other domain to train on)")
        elif mode == "joint":
            if held_out is not None:
                raise InvalidOptionError(f"data.held_out={held_out!r} is only for mode leave_one_out (mode is joint)")
        else:
            raise InvalidOptionError(f"data.mode={mode!r}; expected 'joint' or 'leave_one_out'")
        if not 0.0 < test_fraction < 1.0:
            raise InvalidOptionError(f"data.test_fraction={test_fraction}; expected a number between 0 and 1")
        self.root = Path(root)
        self.domains = domains
        self.mode = mode
        self.held_out = held_out
        self.train_domains = [d for d in domains if d != held_out]
        if domain_balanced and batch_size % len(self.train_domains):
            raise InvalidOptionError(
                f"data.batch_size={batch_size} with data.domain_balanced: the batch must split evenly "
                f"over the {len(self.train_domains)} training domains {self.train_domains}")
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.domain_balanced = domain_balanced
        self.image_size = image_size
        self.resize_size = resize_size
        self.collate_fn = collate_with_domain
        self._splits: dict[str, DomainImageList] | None = None

    def check_splits(self) -> None:
        """Every domain folder exists and holds the same ``num_classes`` class folders."""
        self._classes()

    def _classes(self) -> list[str]:
        if not self.root.is_dir():
            raise DatasetNotFoundError(
                f"Office-Home root {self.root} does not exist; expected {self.root}/<Domain>/<class>/*.jpg "
                f"with domains Art, Clipart, Product, 'Real World'")
        per_domain = {d: find_class_folders(domain_folder(self.root, d)) for d in self.domains}
        first, classes = next(iter(per_domain.items()))
        for name, found in per_domain.items():
            if found != classes:
                missing = sorted(set(classes) - set(found)) or sorted(set(found) - set(classes))
                raise DatasetNotFoundError(
                    f"Office-Home domains {first} and {name} hold different class folders "
                    f"(e.g. {', '.join(missing[:5])}); every domain needs the same {len(classes)} classes")
        if len(classes) != self.num_classes:
            raise InvalidOptionError(
                f"data.num_classes={self.num_classes} but {domain_folder(self.root, first)} has "
                f"{len(classes)} class folders; set data.num_classes: {len(classes)}")
        return classes

    def _domain_split(self, domain: str, d: int, classes: list[str]) -> tuple[list, list]:
        folder = domain_folder(self.root, domain)
        samples = [(path, c, d) for c, name in enumerate(classes) for path in sorted((folder / name).rglob("*"))
                   if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")]
        targets = [c for _, c, _ in samples]
        try:
            train, test = train_test_split(np.arange(len(samples)), test_size=self.test_fraction,
                                           stratify=targets, random_state=self.split_seed)
        except ValueError as error:  # e.g. a class with one image cannot be stratified
            raise InvalidOptionError(f"cannot split Office-Home domain {domain} ({folder}): {error}") from error
        return [samples[i] for i in sorted(train)], [samples[i] for i in sorted(test)]

    def _load(self) -> dict[str, DomainImageList]:
        classes = self._classes()
        train: list = []
        evaluate: list = []
        for d, domain in enumerate(self.domains):
            train_part, test_part = self._domain_split(domain, d, classes)
            if domain == self.held_out:
                evaluate += train_part + test_part
            else:
                train += train_part
                evaluate += test_part
        evaluate.sort(key=lambda s: (s[2], s[1], str(s[0])))
        return {"train": DomainImageList(train, classes), "val": DomainImageList(evaluate, classes),
                "test": DomainImageList(evaluate, classes)}

    def build_split(self, split: str) -> Dataset:
        if self._splits is None:
            self._splits = self._load()
        return self._splits[split]

    def train_sampler(self) -> EpochSeededSampler:
        """Domain-balanced batches when ``domain_balanced``, else the shuffled default."""
        if not self.domain_balanced:
            return super().train_sampler()
        if self.train_set is None:
            self.setup("fit")
        rank, world = self._rank_and_world()
        return DomainBalancedSampler(self.build_split("train").domain_ids(), self.batch_size, num_replicas=world,
                                     rank=rank, seed=self.seed, interleave_ranks=self.interleave_ranks)

    def train_transform(self) -> Transform:
        return imagenet_train(self.image_size)

    def eval_transform(self) -> Transform:
        return imagenet_eval(self.image_size, self.resize_size)
