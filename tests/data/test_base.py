"""ClassificationDataModule: loaders, drop_last, rank sharding, errors, and Lightning's epoch hook."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from recal.data.base import ClassificationDataModule
from recal.data.sampling import EpochSeededSampler
from recal.data.transforms import cifar_eval, cifar_train
from recal.errors import InvalidOptionError


class ToyDataModule(ClassificationDataModule):
    """n random 3x8x8 images whose targets are their indices (to follow the order)."""

    def __init__(self, n: int = 30, batch_size: int = 4, seed: int = 0, interleave_ranks: int = 1) -> None:
        super().__init__(num_classes=n, batch_size=batch_size, seed=seed, interleave_ranks=interleave_ranks)
        self.n = n

    def build_split(self, split: str) -> Dataset:
        images = torch.randint(0, 256, (self.n, 3, 8, 8), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(0))
        return TensorDataset(images, torch.arange(self.n))

    def train_transform(self):
        return cifar_train(size=8, padding=1)

    def eval_transform(self):
        return cifar_eval()


def targets(loader) -> list[list[int]]:
    return [y.tolist() for _, y in loader]


def test_train_loader_drops_the_last_partial_batch():
    dm = ToyDataModule(n=30, batch_size=4)
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, EpochSeededSampler) and loader.drop_last
    batches = targets(loader)
    assert len(loader) == len(batches) == 7 and all(len(b) == 4 for b in batches)
    assert len({i for b in batches for i in b}) == 28


def test_val_and_test_loaders_keep_order_and_every_sample():
    dm = ToyDataModule(n=30, batch_size=4)
    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        assert sum(targets(loader), []) == list(range(30))
    assert dm.val_names == ["val"]


def test_train_order_follows_seed_and_epoch():
    first = targets(ToyDataModule(seed=1).train_dataloader())
    assert first == targets(ToyDataModule(seed=1).train_dataloader())
    assert first != targets(ToyDataModule(seed=2).train_dataloader())
    loader = ToyDataModule(seed=1).train_dataloader()
    loader.sampler.set_epoch(1)
    assert targets(loader) != first


def test_too_small_train_split_is_an_error_naming_the_numbers():
    with pytest.raises(InvalidOptionError, match=r"30 samples.*data.batch_size=32.*at most 30"):
        ToyDataModule(n=30, batch_size=32).train_dataloader()
    with pytest.raises(InvalidOptionError, match="batch_size=0"):
        ToyDataModule(batch_size=0)


def test_ranks_come_from_the_attached_trainer():
    shards = []
    for rank in range(2):
        dm = ToyDataModule(n=30, batch_size=4)
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        loader = dm.train_dataloader()
        assert (loader.sampler.rank, loader.sampler.num_replicas) == (rank, 2)
        shards.append({i for b in targets(loader) for i in b})
        assert len(loader) == 3  # 15 per rank
    assert not shards[0] & shards[1]
    dm = ToyDataModule(n=30, batch_size=16)
    dm.trainer = SimpleNamespace(global_rank=0, world_size=2)
    with pytest.raises(InvalidOptionError, match="15 per rank over 2"):
        dm.train_dataloader()


def test_interleaved_loader_matches_two_ranks():
    per_rank = []
    for rank in range(2):
        dm = ToyDataModule(n=30, batch_size=4, seed=3)
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        per_rank.append(targets(dm.train_dataloader()))
    one = targets(ToyDataModule(n=30, batch_size=4, seed=3, interleave_ranks=2).train_dataloader())
    assert one[0::2] == per_rank[0] and one[1::2] == per_rank[1]


def test_hyperparameters_include_subclass_arguments():
    assert dict(ToyDataModule(n=12, batch_size=3).hparams) == {
        "n": 12, "batch_size": 3, "seed": 0, "interleave_ranks": 1, "num_classes": 12, "num_workers": 0}


class TinyClassifier(L.LightningModule):
    def __init__(self, log_dir: str | None = None) -> None:
        super().__init__()
        self.net = torch.nn.Linear(3 * 8 * 8, 30)  # targets are sample indices
        self.seen: list[tuple[int, list[int]]] = []
        self.images: list[torch.Tensor] = []
        self.log_dir = log_dir

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.seen.append((self.current_epoch, y.tolist()))
        self.images.append(x.clone())
        if self.log_dir is not None:  # spawned DDP ranks report what they saw through files
            with open(f"{self.log_dir}/rank{self.global_rank}.txt", "a") as f:
                f.write(f"{self.current_epoch} {type(self.trainer.train_dataloader.sampler).__name__} "
                        f"{' '.join(map(str, y.tolist()))}\n")
        return torch.nn.functional.cross_entropy(self.net(x.flatten(1)), y)

    def validation_step(self, batch, batch_idx):
        pass  # validation is switched off (limit_val_batches=0); present to silence Lightning

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def quiet_trainer(tmp_path, **kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                     limit_val_batches=0, default_root_dir=tmp_path, **kwargs)


def test_lightning_keeps_the_sampler_and_advances_its_epoch(tmp_path):
    dm, model = ToyDataModule(n=30, batch_size=4, seed=5), TinyClassifier()
    trainer = quiet_trainer(tmp_path, max_epochs=2, devices=1, enable_checkpointing=False)
    trainer.fit(model, datamodule=dm)
    assert isinstance(trainer.train_dataloader.sampler, EpochSeededSampler)
    assert trainer.train_dataloader.sampler.epoch == 1
    expected = []
    for epoch in range(2):
        loader = ToyDataModule(n=30, batch_size=4, seed=5).train_dataloader()
        loader.sampler.set_epoch(epoch)
        expected += [(epoch, b) for b in targets(loader)]
    assert model.seen == expected


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_resumed_run_sees_the_same_samples_and_augmentation(tmp_path):
    straight = TinyClassifier()
    quiet_trainer(tmp_path / "a", max_epochs=2, devices=1, enable_checkpointing=False).fit(
        straight, datamodule=ToyDataModule(seed=5))
    quiet_trainer(tmp_path / "b", max_epochs=1, devices=1).fit(TinyClassifier(), datamodule=ToyDataModule(seed=5))
    checkpoint = next((tmp_path / "b").rglob("*.ckpt"))
    resumed = TinyClassifier()
    quiet_trainer(tmp_path / "b", max_epochs=2, devices=1).fit(
        resumed, datamodule=ToyDataModule(seed=5), ckpt_path=checkpoint)
    half = len(straight.seen) // 2
    assert resumed.seen == straight.seen[half:] and resumed.seen[0][0] == 1
    assert all(torch.equal(a, b) for a, b in zip(resumed.images, straight.images[half:]))


def test_ddp_ranks_use_our_sampler_and_see_disjoint_shards(tmp_path):
    dm, model = ToyDataModule(n=30, batch_size=4, seed=5), TinyClassifier(log_dir=str(tmp_path))
    trainer = quiet_trainer(tmp_path, max_epochs=2, devices=2, strategy="ddp_spawn", enable_checkpointing=False)
    trainer.fit(model, datamodule=dm)
    single = ToyDataModule(n=30, batch_size=4, seed=5, interleave_ranks=2)
    for epoch in range(2):
        loader = single.train_dataloader()
        loader.sampler.set_epoch(epoch)
        micro = targets(loader)
        for rank in range(2):
            lines = [line.split() for line in (tmp_path / f"rank{rank}.txt").read_text().splitlines()]
            assert {line[1] for line in lines} == {"EpochSeededSampler"}
            seen = [[int(i) for i in line[2:]] for line in lines if int(line[0]) == epoch]
            assert seen == micro[rank::2]
