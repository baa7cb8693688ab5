"""Multi-label classification: label files, metrics, per-label thresholds, checkpoints, predict, the mosaic tool."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.classification import MultilabelPrecisionRecallCurve

from lit_vision.data.multilabel import MultiLabelDataModule
from lit_vision.errors import UserError
from lit_vision.tasks.multilabel import (
    THRESHOLD_STEPS,
    MultiLabelTask,
    best_thresholds,
    f1_table,
    multilabel_metrics,
)
from lit_vision.tools.photo_mosaics import main as mosaics_main
from tests.fakes.datasets import save_image
from tests.helpers import compose_cfg, without_hydra

# one solid colour per class: a mosaic tile's colour tells its class
COLOURS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (30, 40, 210)}


def colour_folders(root: Path, per_class: int = 12) -> Path:
    for name, colour in COLOURS.items():
        for i in range(per_class):
            save_image(root / name / f"{i:02d}.png", np.full((8, 8, 3), colour, dtype=np.uint8))
    return root


@pytest.fixture(scope="module")
def mosaics(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("mosaics")
    out = base / "out"
    args = [str(colour_folders(base / "src")), str(out), "--train", "48", "--val", "24", "--test", "12"]
    assert mosaics_main(args) == 0
    return out


def read_rows(path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------ the mosaic tool
def test_mosaic_labels_are_the_classes_of_its_tiles(mosaics):
    rows = read_rows(mosaics / "train.csv")
    assert len(rows) == 48
    palette = {colour: name for name, colour in COLOURS.items()}
    sizes = set()
    for row in rows:
        image = np.asarray(
            __import__("PIL.Image", fromlist=["Image"]).open(mosaics / row["path"]).convert("RGB")
        )
        assert image.shape == (16, 16, 3)
        shown = {palette[tuple(int(v) for v in image[y, x])] for y in (4, 12) for x in (4, 12)}
        assert set(row["labels"].split(";")) == shown
        sizes.add(len(shown))
    assert len(sizes) >= 2  # mosaics show different numbers of classes
    assert (mosaics / "val.csv").is_file() and (mosaics / "test.csv").is_file()


def test_mosaic_tool_refuses_a_folder_without_classes(tmp_path):
    (tmp_path / "flat").mkdir()
    assert mosaics_main([str(tmp_path / "flat"), str(tmp_path / "out")]) == 2


# ------------------------------------------------------------------ metrics and thresholds
PROBS = torch.tensor([[0.9, 0.2], [0.6, 0.7], [0.3, 0.4], [0.1, 0.8]])
TARGET = torch.tensor([[1, 1], [1, 1], [0, 0], [0, 0]])


def test_metrics_on_a_hand_computed_example():
    metrics = multilabel_metrics(2)
    metrics.update(PROBS, TARGET)
    values = metrics.compute()
    # label 0 ranks both positives first: AP 1. label 1 ranks 0.8(neg) 0.7(pos) 0.4(neg) 0.2(pos):
    # AP = 0.5 * 1/2 + 0.5 * 2/4 = 0.5. mAP = 0.75.
    assert values["ap"].tolist() == pytest.approx([1.0, 0.5])
    assert values["map"].item() == pytest.approx(0.75)
    task = MultiLabelTask(net={"_target_": "torch.nn.Identity"}, num_classes=2)
    logged = task.epoch_values("test", dict(values))
    # at the starting thresholds 0.5: label 0 predicts [1,1,0,0] (F1 1); label 1 [0,1,0,1]: tp 1, fp 1, fn 1
    assert logged["f1/0"].item() == pytest.approx(1.0)
    assert logged["f1/1"].item() == pytest.approx(0.5)
    assert logged["f1_macro"].item() == pytest.approx(0.75)
    assert logged["map"].item() == pytest.approx(0.75)


def test_threshold_with_the_best_f1_is_chosen_per_label():
    probs = torch.tensor([[0.35, 0.3, 0.6], [0.8, 0.2, 0.7], [0.2, 0.9, 0.1], [0.5, 0.1, 0.1]])
    target = torch.tensor([[1, 0, 1], [1, 0, 1], [0, 0, 0], [0, 0, 0]])
    curve = MultilabelPrecisionRecallCurve(num_labels=3, thresholds=THRESHOLD_STEPS)
    curve.update(probs, target)
    precision, recall, grid = curve.compute()
    f1 = f1_table(precision[:, :-1], recall[:, :-1])
    current = torch.tensor([0.5, 0.42, 0.5])
    chosen = best_thresholds(f1, grid, recall[:, 0] > 0, current)
    # label 0: t in (0.2, 0.35] keeps both positives and one negative (F1 0.8, the best): nearest 0.5 is 0.35.
    # label 1 has no positive: it keeps its threshold. label 2: every t in (0.1, 0.6] is perfect: 0.5.
    assert chosen.tolist() == pytest.approx([0.35, 0.42, 0.5])
    assert f1[0].max().item() == pytest.approx(0.8)


# ------------------------------------------------------------------ label files
def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def image_root(tmp_path: Path, names=("a.png", "b.png", "c.png")) -> Path:
    for name in names:
        save_image(tmp_path / name, np.zeros((8, 8, 3), dtype=np.uint8))
    return tmp_path


def test_csv_and_index_label_files_give_the_same_multi_hot_targets(tmp_path):
    root = image_root(tmp_path)
    write(root / "train.csv", "path,labels\na.png,dog;cat\nb.png,\nc.png,bird\n")
    write(root / "val.txt", "# index lines\na.png cat\n\nb.png bird dog\n")
    dm = MultiLabelDataModule(root=str(root), train_file="train.csv", val_file="val.txt", check_images="off")
    dm.setup("fit")
    assert dm.class_names == ["bird", "cat", "dog"] and dm.num_classes == 3
    assert [s.label for s in dm.samples["train"]] == [(0.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0)]
    assert [s.label for s in dm.samples["val"]] == [(0.0, 1.0, 0.0), (1.0, 0.0, 1.0)]
    _images, targets = next(iter(dm.val_dataloader()))
    assert targets.dtype == torch.float32 and targets.tolist() == [[0, 1, 0], [1, 0, 1]]
    assert dm.data_info().kind == "multilabel"


def test_without_a_val_file_a_seeded_fraction_of_train_validates(tmp_path):
    names = [f"{i}.png" for i in range(10)]
    root = image_root(tmp_path, names)
    write(root / "train.txt", "".join(f"{n} {'cat' if i % 2 else 'dog'}\n" for i, n in enumerate(names)))
    parts = []
    for _ in range(2):
        dm = MultiLabelDataModule(root=str(root), train_file="train.txt", val_file=None, val_fraction=0.2)
        dm.setup("fit")
        parts.append({k: [s.path for s in v] for k, v in dm.samples.items()})
    assert len(parts[0]["train"]) == 8 and len(parts[0]["val"]) == 2
    assert set(parts[0]["train"]).isdisjoint(parts[0]["val"])
    assert parts[0]["test"] == parts[0]["val"] and parts[0] == parts[1]


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ("file,labels\na.png,cat\n", r"train\.csv has no column\(s\) path \(its header: file, labels\)"),
        ("path,labels\na.png,cat\nzz.png,dog\n", r"train\.csv:3: zz\.png does not exist"),
        ("path,labels\na.png,cat\n,dog\n", r"train\.csv:3: the path cell is empty"),
        ("path,labels\na.png,cat;horse\n", r"train\.csv:2: unknown label\(s\) 'horse'"),
    ],
)
def test_bad_label_files_name_the_file_and_line(tmp_path, train, message):
    root = image_root(tmp_path)
    write(root / "train.csv", train)
    write(root / "val.csv", "path,labels\nb.png,cat\n")
    dm = MultiLabelDataModule(root=str(root), class_names=["cat", "dog"], check_images="off")
    with pytest.raises(UserError, match=message):
        dm.setup("fit")


def test_multilabel_data_refuses_the_balanced_sampler_and_a_wrong_num_classes(tmp_path):
    with pytest.raises(UserError, match=r"data\.sampler=shuffle"):
        MultiLabelDataModule(root=str(tmp_path), sampler="balanced")
    root = image_root(tmp_path)
    write(root / "train.csv", "path,labels\na.png,cat\n")
    write(root / "val.csv", "path,labels\nb.png,dog\n")
    dm = MultiLabelDataModule(root=str(root), num_classes=5, check_images="off")
    with pytest.raises(UserError, match=r"data\.num_classes=5 but the data has 2 labels \(cat, dog\)"):
        dm.setup("fit")


# ------------------------------------------------------------------ training, checkpoint, predict
@pytest.fixture(scope="module")
def trained(mosaics, tmp_path_factory) -> Path:
    from lit_vision.runs.run import train

    out = tmp_path_factory.mktemp("run")
    cfg = compose_cfg(
        [
            "data=multilabel",
            "model=multilabel",
            f"data.root={mosaics}",
            "data.test_file=test.csv",
            "data.image_size=16",
            "data.batch_size=16",
            "data.num_workers=0",
            "model.net.channels=[8,16]",
            "optim.lr=0.01",
            "trainer.max_epochs=3",
            "trainer.num_sanity_val_steps=0",
            "logger=none",
        ],
        output_dir=out,
    )
    metrics, _ = train(without_hydra(cfg))
    assert metrics["status"] == "completed"
    assert 0.0 <= metrics["test/map"] <= 1.0 and "test/f1/red" in metrics
    return Path(metrics["best_model_path"])


def test_checkpoint_keeps_the_thresholds_chosen_on_validation(trained):
    from lit_vision.inference.checkpoint import load_model

    checkpoint = torch.load(trained, weights_only=True)  # data only: no code runs
    saved = checkpoint["state_dict"]["thresholds"]
    assert saved.shape == (3,)
    assert not torch.equal(saved, torch.full((3,), 0.5))  # chosen on validation, not the starting value
    model = load_model(trained)
    assert model.kind == "multilabel" and model.class_names == ["blue", "green", "red"]
    assert torch.equal(model.task.thresholds, saved)


def test_predict_writes_the_label_set_of_every_image(trained, mosaics, tmp_path):
    from lit_vision.inference.api import predict

    summary = predict(trained, mosaics / "test", tmp_path / "pred", num_workers=0)
    assert summary["task"] == "multilabel" and summary["count"] == 12
    rows = read_rows(tmp_path / "pred" / "predictions.csv")
    thresholds = torch.load(trained, weights_only=True)["state_dict"]["thresholds"].tolist()
    names = ["blue", "green", "red"]
    for row in rows:
        expected = [n for n, t in zip(names, thresholds, strict=True) if float(row[f"p_{n}"]) >= t]
        assert row["labels"] == ";".join(expected) and int(row["count"]) == len(expected)
    everything = predict(trained, mosaics / "test", tmp_path / "all", num_workers=0, threshold=1e-6)
    rows = read_rows(everything["outputs"]["csv"])
    assert all(row["labels"] == "blue;green;red" for row in rows)
    with pytest.raises(UserError, match=r"threshold must be between 0 and 1, got 1\.5"):
        predict(trained, mosaics / "test", tmp_path / "bad", num_workers=0, threshold=1.5)


def test_export_records_the_thresholds_and_the_sigmoid(trained, tmp_path):
    from lit_vision.inference.export import export_model

    result = export_model(trained, "torchscript", tmp_path / "m.pt")
    output = result.metadata["output"]
    thresholds = torch.load(trained, weights_only=True)["state_dict"]["thresholds"].tolist()
    assert output["kind"] == "logits" and "sigmoid" in output["to_prediction"]
    assert output["thresholds"] == pytest.approx(thresholds, abs=1e-4)
    assert output["class_names"] == ["blue", "green", "red"]
