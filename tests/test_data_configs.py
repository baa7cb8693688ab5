"""Every classification data config trains end to end (fast_dev_run, in-process) on generated files."""

from __future__ import annotations

import pytest

from lit_vision.runs.run import train
from tests.fakes import (
    make_cat_to_name,
    make_cifar10,
    make_cifar100,
    make_fashion_mnist,
    make_image_folder,
    make_index_dataset,
    make_mnist,
)
from tests.helpers import compose_cfg, without_hydra

SMALL_FILES = ["data.image_size=32", "data.eval_resize=36"]


def flowers(root):
    make_image_folder(root, classes=("1", "10", "2"), per_class={"train": 4, "valid": 2}, formats=("jpg",))
    make_cat_to_name(root, {"1": "pink primrose", "10": "globe thistle", "2": "hard-leaved pocket orchid"})


CASES = {
    "mnist": (make_mnist, []),
    "fashion_mnist": (make_fashion_mnist, ["data.augment=[{RandomAffine: {degrees: 10}}]"]),
    "cifar10": (make_cifar10, []),
    "cifar100": (lambda root: make_cifar100(root, n_train=1000, n_test=100), ["data.augment=[Cutout]"]),
    "image_folder": (
        lambda root: make_image_folder(root, per_class=10),
        [*SMALL_FILES, "data.num_workers=1"],
    ),
    "image_list": (lambda root: make_index_dataset(root), ["data.num_workers=0"]),
    "flowers": (flowers, [*SMALL_FILES, "data.num_workers=0", "data.num_classes=null"]),
}


# The experiment tests (mnist_cnn, cifar10_resnet34, cifar10_png_index) run these three in the fast suite.
COVERED_BY_EXPERIMENTS = {"mnist", "cifar10", "image_list"}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in COVERED_BY_EXPERIMENTS else n for n in sorted(CASES)],
)
def test_data_config_fast_dev_run(name, tmp_path):
    make, overrides = CASES[name]
    root = tmp_path / "data"
    make(root)
    cfg = compose_cfg(
        [f"data={name}", f"data.root={root}", "debug=fast_dev_run", "logger=csv", *overrides],
        output_dir=tmp_path / "run",
    )
    job_cfg = without_hydra(cfg)
    metrics, _ = train(job_cfg)
    assert "test/acc" in metrics and 0.0 <= metrics["test/acc"] <= 1.0
    if name == "flowers":
        assert job_cfg.data.num_classes == 3  # discovered from the folders before the model was built
