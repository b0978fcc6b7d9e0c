"""OfficeHomeDataModule on a tiny Office-Home in its real layout (``Real World`` with a space)."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest
import torch

from recal.data.office_home import DomainBalancedSampler, OfficeHomeDataModule
from recal.errors import DatasetNotFoundError, InvalidOptionError
from tests.fixtures import write_office_home


@pytest.fixture(scope="module")
def office_home(tmp_path_factory):
    return write_office_home(tmp_path_factory.mktemp("office_home"), classes=3, per_domain=5, size=(30, 36))


def small(root, **kwargs) -> OfficeHomeDataModule:
    options = dict(num_classes=3, batch_size=8, num_workers=0, image_size=16, resize_size=20)
    return OfficeHomeDataModule(root, **{**options, **kwargs})


def _samples(dataset) -> list:
    return dataset.dataset.samples


def test_batches_carry_the_domain_id(office_home):
    assert (office_home / "Real World").is_dir()
    dm = small(office_home)
    x, y, d = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 16, 16) and y.shape == d.shape == (8,)
    assert set(d.tolist()) <= {0, 1, 2, 3}
    val = [b for b in dm.val_dataloader()]
    assert torch.cat([b[2] for b in val]).tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3


def test_split_is_80_20_stratified_seeded_and_disjoint(office_home):
    dm = small(office_home)
    dm.setup()
    train, test = _samples(dm.train_set), _samples(dm.val_sets["val"])
    assert len(train) == 48 and len(test) == 12  # 15 images per domain: 12 / 3
    assert not {str(p) for p, _, _ in train} & {str(p) for p, _, _ in test}
    assert Counter((c, d) for _, c, d in test) == {(c, d): 1 for c in range(3) for d in range(4)}
    again = small(office_home)
    again.setup()
    assert _samples(again.train_set) == train
    other = small(office_home, split_seed=1)
    other.setup()
    assert _samples(other.val_sets["val"]) != test


def test_real_world_with_underscore_is_accepted(tmp_path, office_home):
    root = tmp_path / "renamed"
    shutil.copytree(office_home, root)
    (root / "Real World").rename(root / "Real_World")
    dm = small(root)
    dm.setup("fit")
    assert {p.parts[-3] for p, _, d in _samples(dm.train_set) if d == 3} == {"Real_World"}


def test_missing_domain_folder_names_it(tmp_path, office_home):
    root = tmp_path / "no_clipart"
    shutil.copytree(office_home, root)
    shutil.rmtree(root / "Clipart")
    with pytest.raises(DatasetNotFoundError, match=f"domain 'Clipart' not found: expected the folder '{root / 'Clipart'}'"):
        small(root).setup("fit")
    shutil.rmtree(root / "Real World")
    with pytest.raises(DatasetNotFoundError, match="domain 'Real_World' not found: .*/Real World' or .*/Real_World'"):
        small(root, domains=["Art", "Real_World"]).setup("fit")


def test_domains_must_share_their_classes(tmp_path, office_home):
    root = tmp_path / "mismatch"
    shutil.copytree(office_home, root)
    shutil.rmtree(root / "Product" / "Batteries")
    with pytest.raises(DatasetNotFoundError, match="domains Art and Product hold different class folders"):
        small(root).setup("fit")


def test_leave_one_out_trains_on_three_and_tests_on_all_of_the_fourth(office_home):
    dm = small(office_home, mode="leave_one_out", held_out="Clipart")
    dm.setup()
    assert dm.train_domains == ["Art", "Product", "Real_World"]
    assert {d for _, _, d in _samples(dm.train_set)} == {0, 2, 3}
    evaluated = Counter(d for _, _, d in _samples(dm.val_sets["val"]))
    assert evaluated == {0: 3, 1: 15, 2: 3, 3: 3}


@pytest.mark.parametrize("kwargs, message", [
    (dict(mode="leave_one_out"), "data.held_out=None; leave_one_out needs one of"),
    (dict(held_out="Art"), "only for mode leave_one_out"),
    (dict(domains=["Art", "Sketch"]), "data.domains=.*Sketch"),
    (dict(domain_balanced=True, batch_size=6), "data.batch_size=6 with data.domain_balanced"),
])
def test_bad_options_name_the_value(office_home, kwargs, message):
    with pytest.raises(InvalidOptionError, match=message):
        small(office_home, **kwargs)


def test_domain_balanced_batches_hold_equal_shares_of_each_domain(office_home):
    dm = small(office_home, domain_balanced=True, mode="leave_one_out", held_out="Art", batch_size=6)
    batches = [d.tolist() for _, _, d in dm.train_dataloader()]
    assert len(batches) == 36 // 6
    assert all(Counter(b) == {1: 2, 2: 2, 3: 2} for b in batches)


def test_domain_balanced_sampler_is_seeded_oversamples_and_splits_ranks():
    ids = np.array([0] * 4 + [1] * 20)
    sampler = DomainBalancedSampler(ids, batch_size=4, seed=3)
    first = sampler.indices()
    assert first == DomainBalancedSampler(ids, batch_size=4, seed=3).indices()
    assert len(first) == len(sampler) == 24 and sum(ids[first] == 0) == 12  # the small domain is revisited
    sampler.set_epoch(1)
    assert sampler.indices() != first
    ranks = [DomainBalancedSampler(ids, batch_size=4, num_replicas=2, rank=r, seed=3) for r in (0, 1)]
    assert [len(r) for r in ranks] == [12, 12]
    both = DomainBalancedSampler(ids, batch_size=4, seed=3, interleave_ranks=2).indices()
    assert both == [i for k in range(3) for r in ranks for i in r.indices()[4 * k:4 * k + 4]]
    assert all(isinstance(item, tuple) and item[0] == 0 for item in DomainBalancedSampler(ids, 4, seed=3))
