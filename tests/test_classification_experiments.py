"""Every classification recipe composes and runs a fast_dev_run on small files in the real on-disk formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lit_vision.runs.run import train
from tests.fakes import datasets
from tests.helpers import compose_cfg, without_hydra


def mnist_files(root: Path) -> list[str]:
    datasets.make_mnist(root, n_train=60, n_test=20)  # IDX files in MNIST/raw
    return [f"data.root={root}"]


def fashion_files(root: Path) -> list[str]:
    datasets.make_fashion_mnist(root, n_train=60, n_test=20)
    return [f"data.root={root}"]


def cifar10_files(root: Path) -> list[str]:
    datasets.make_cifar10(root, n_train=60, n_test=20)  # pickled batches in cifar-10-batches-py
    return [f"data.root={root}", "data.batch_size=4", "data.eval_batch_size=4"]


def png_index_files(root: Path) -> list[str]:
    datasets.make_index_dataset(root, per_split={"train": 2, "valid": 1, "test": 1})  # PNGs + txt indexes
    return [f"data.root={root}", "data.batch_size=4", "data.eval_batch_size=4", "data.num_workers=0"]


def flowers_files(root: Path) -> list[str]:
    names = {"1": "pink primrose", "2": "hard-leaved pocket orchid", "3": "canterbury bells"}
    datasets.make_image_folder(root, classes=tuple(names), per_class={"train": 3, "valid": 2}, size=(48, 40))
    datasets.make_cat_to_name(root, names)
    return [
        f"data.root={root}",
        "data.num_classes=3",  # the recipe says 102 (the real set); these files have 3
        "data.image_size=32",
        "data.eval_resize=36",
        "data.batch_size=2",
        "data.eval_batch_size=2",
        "data.num_workers=0",
    ]


EXPERIMENTS = {
    "mnist_cnn": mnist_files,
    "mnist_net": mnist_files,
    "fashion_mnist_lenet": fashion_files,
    "cifar10_resnet34": cifar10_files,
    "cifar10_png_index": png_index_files,
    "flowers_finetune": flowers_files,
}


PRETRAINED_BY_DEFAULT = ("cifar10_resnet34", "flowers_finetune")


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_experiment_fast_dev_run_on_real_formats(name, tmp_path):
    data_overrides = EXPERIMENTS[name](tmp_path / "data")
    run_dir = tmp_path / "run"
    # the fine-tuning recipes start from ImageNet weights by default: these tests run offline, from scratch
    scratch = ["model.net.weights=null"] if name in PRETRAINED_BY_DEFAULT else []
    cfg = compose_cfg(
        [f"experiment={name}", "debug=fast_dev_run", *scratch, *data_overrides], output_dir=run_dir
    )
    metrics, _ = train(without_hydra(cfg))
    assert 0.0 <= metrics["test/acc"] <= 1.0 and metrics["global_step"] == 1
    saved = json.loads((run_dir / "metrics.json").read_text())
    for stage in ("train", "val", "test"):
        for metric in ("acc", "f1_macro", "precision_macro", "recall_macro"):
            assert f"{stage}/{metric}" in saved, f"{stage}/{metric} missing"
