"""COCO data: bad files and options stop `cli.py` with one line naming the file and the problem; skips are counted."""

from __future__ import annotations


import pytest

from recal.cli import main
from recal.data.coco import coco_split
from tests.detection.coco_fixture import edit_annotations, write_coco
from tests.detection.runs import coco_fit, quickstart_fit
from tests.error_lines import the_error_line

SMALL = ["--model.init_args.backbone.name", "resnet18"]  # a cheap model: these runs stop at the data


@pytest.fixture
def coco_root(tmp_path):
    return write_coco(tmp_path / "coco")


def error_line(capsys, args, *names) -> str:
    capsys.readouterr()
    assert main(args) == 2
    return the_error_line(capsys.readouterr().err, *names)


def test_a_missing_annotation_file(coco_root, tmp_path, capsys):
    (coco_root / "annotations" / "instances_val2017.json").unlink()
    args = [*coco_fit("r50_fpn_coco.yaml", coco_root, *SMALL), "--trainer.default_root_dir", str(tmp_path / "o")]
    error_line(capsys, args, "instances_val2017.json", "does not exist")


def test_malformed_json(coco_root, tmp_path, capsys):
    (coco_root / "annotations" / "instances_train2017.json").write_text('{"images": [')
    args = [*coco_fit("r50_fpn_coco.yaml", coco_root, *SMALL), "--trainer.default_root_dir", str(tmp_path / "o")]
    error_line(capsys, args, "instances_train2017.json", "is not valid JSON")


def test_an_image_listed_but_absent(coco_root, tmp_path, capsys):
    (coco_root / "train2017" / "000000000002.jpg").unlink()
    args = [*coco_fit("r50_fpn_coco.yaml", coco_root, *SMALL), "--trainer.default_root_dir", str(tmp_path / "o")]
    error_line(capsys, args, "000000000002.jpg", "instances_train2017.json", "does not exist")


def test_a_category_id_not_in_categories(coco_root, tmp_path, capsys):
    edit_annotations(coco_root, "train", lambda data: data["annotations"][0].update(category_id=5))
    args = [*coco_fit("r50_fpn_coco.yaml", coco_root, *SMALL), "--trainer.default_root_dir", str(tmp_path / "o")]
    error_line(capsys, args, "instances_train2017.json", "category_id 5", "[1, 18, 62]")


def test_num_classes_below_the_largest_category_id(coco_root, tmp_path, capsys):
    args = [*coco_fit("r50_fpn_coco.yaml", coco_root, *SMALL), "--data.init_args.num_classes", "50",
            "--trainer.default_root_dir", str(tmp_path / "o")]
    error_line(capsys, args, "data.num_classes=50", "62")


def test_missing_backbone_weights_name_the_classification_config(coco_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the configs' weights path is relative: make sure no such run is here
    args = [*coco_fit("srm_r50_fpn_coco.yaml", coco_root), "--model.init_args.weights",
            "runs/srm_r50/version_0/checkpoints/best.ckpt", "--trainer.default_root_dir", str(tmp_path / "o")]
    error_line(capsys, args, "runs/srm_r50/version_0/checkpoints/best.ckpt", "does not exist", "configs/srm_r50.yaml")


def test_one_image_per_device_with_training_gate_batch_norms(tmp_path, capsys):
    args = [*quickstart_fit("--data.init_args.batch_size", "1"), "--trainer.default_root_dir", str(tmp_path)]
    error_line(capsys, args, "data.batch_size=1", "layer1.0.gate.bn")


def test_a_backbone_without_resnet_stages(tmp_path, capsys):
    args = [*quickstart_fit("--model.init_args.backbone.name", "srm_cifar_resnet20"),
            "--trainer.default_root_dir", str(tmp_path)]
    error_line(capsys, args, "srm_cifar_resnet20", "layer4")


def test_images_without_boxes_and_degenerate_boxes_are_skipped_and_counted(coco_root):
    train, summary = coco_split(coco_root, "train")
    assert (summary.images, len(train), summary.degenerate_boxes) == (5, 4, 1)
    assert summary.message("train") == ("COCO train2017: skipped 1 of 5 images without usable boxes and dropped 1 "
                                        "degenerate box(es) (no width or height inside the image), as "
                                        "torchvision's detection references do")
    val, val_summary = coco_split(coco_root, "val")
    assert (len(val), val_summary.message("val")) == (2, None)


def test_training_targets_leave_out_crowd_and_degenerate_boxes_validation_keeps_crowd(coco_root):
    from recal.data.coco import CocoDataModule

    edit_annotations(coco_root, "val", lambda data: data["annotations"][0].update(iscrowd=1))
    data = CocoDataModule(root=str(coco_root), batch_size=2, num_workers=0, hflip_prob=0.0)
    data.setup("fit")
    by_id = {}
    for i in range(len(data.train_set)):
        _, target = data.train_set[(0, i)]
        by_id[target["image_id"]] = target
    assert by_id[2]["labels"].tolist() == [62]      # its crowd person left out
    assert by_id[3]["labels"].tolist() == [18]      # its zero-width person dropped
    assert by_id[1]["boxes"].tolist() == [[10.0, 8.0, 40.0, 48.0], [50.0, 20.0, 80.0, 50.0]]
    _, target = data.val_set[0]
    assert target["iscrowd"].tolist() == [1, 0] and target["labels"].tolist() == [1, 62]


def test_flips_are_seeded_by_seed_epoch_and_index(coco_root):
    from recal.data.coco import CocoDataModule

    data = CocoDataModule(root=str(coco_root), batch_size=2, num_workers=0)
    data.setup("fit")
    flips = [[data.train_set[(epoch, i)][1]["boxes"][0, 0].item() for i in range(4)] for epoch in range(6)]
    again = [[data.train_set[(epoch, i)][1]["boxes"][0, 0].item() for i in range(4)] for epoch in range(6)]
    assert flips == again and len({tuple(f) for f in flips}) > 1


def test_aspect_ratio_grouping_fills_each_batch_from_one_group():
    from recal.data.detection_base import AspectRatioGroupedSampler, aspect_ratio_groups

    # factor 3: bin edges 2 ** linspace(-1, 1, 7), 0.5 … 2; portrait, square and landscape land apart
    assert aspect_ratio_groups([0.5, 0.75, 1.0, 1.33, 1.6, 2.5], 3) == [1, 2, 4, 5, 6, 7]
    assert aspect_ratio_groups([0.3, 3.0], 0) == [0, 1]
    groups = [0] * 5 + [1] * 7  # two full batches and one left over in group 0, three and one in group 1
    sampler = AspectRatioGroupedSampler(groups, batch_size=2, seed=3, drop_last=True)
    order = [index for _, index in sampler]
    assert sorted(order) == list(range(12))
    pairs = [order[i:i + 2] for i in range(0, 12, 2)]
    assert all(groups[a] == groups[b] for a, b in pairs[:-1])
    assert sorted(groups[i] for i in pairs[-1]) == [0, 1]  # the two leftovers, batched together last
    sampler.set_epoch(1)
    assert [index for _, index in sampler] != order  # reshuffled per epoch
