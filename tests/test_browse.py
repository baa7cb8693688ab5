"""``python -m lit_vision.tools.browse``: a grid of training samples as the model sees them."""

from __future__ import annotations

import json

import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from lit_vision.config.compose import compose_train_config
from lit_vision.tools import browse
from tests.fakes import make_fashion_mnist


@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fm")
    make_fashion_mnist(root, n_train=160, n_test=40)
    return root


def test_browse_writes_the_grid_with_the_requested_count(fashion_root, tmp_path, capsys):
    out = tmp_path / "grid.png"
    args = ["data=fashion_mnist", f"data.root={fashion_root}", "--count", "10", "--columns", "4"]
    assert browse.main([*args, "--out", str(out)]) == 0
    summary = json.loads((tmp_path / "grid.png.json").read_text())
    assert summary["count"] == 10 and len(summary["labels"]) == 10
    assert set(summary["labels"]) <= {
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    }
    assert "10 training samples" in capsys.readouterr().out
    # 10 samples in rows of 4 are 3 rows; 4 samples are one row of the same width
    few = tmp_path / "few.png"
    assert browse.main([*args[:2], "--count", "4", "--columns", "4", "--out", str(few)]) == 0
    (width, height), (few_width, few_height) = Image.open(out).size, Image.open(few).size
    assert width == few_width
    assert 2.3 < height / few_height < 3.2


def test_the_samples_are_the_augmented_training_batches_de_normalised(fashion_root):
    def view(augment: str) -> torch.Tensor:
        cfg = compose_train_config(
            ["data=fashion_mnist", f"data.root={fashion_root}", f"data.augment={augment}"],
            keep_hydra_node=False,
        )
        pictures, labels = browse.training_view(instantiate(cfg.data), 6)
        assert len(labels) == 6 and pictures.shape == (6, 1, 28, 28)
        return pictures

    plain = view("[]")
    flipped = view("[{RandomVerticalFlip: {p: 1.0}}]")
    assert plain.min() >= 0.0 and plain.max() <= 1.0  # de-normalised back to pixel values
    assert plain.max() > 0.5
    assert torch.allclose(flipped, plain.flip(-2), atol=1e-5)
    assert not torch.allclose(flipped, plain, atol=1e-3)


def test_soft_labels_show_their_two_largest_shares():
    names = ["cat", "dog", "bird"]
    assert browse.label_text(torch.tensor(2), names) == "bird"
    assert browse.label_text(torch.tensor([0.3, 0.7, 0.0]), names) == "dog 0.70 / cat 0.30"


def test_a_wrong_data_name_is_one_clear_error(tmp_path, capsys):
    assert browse.main(["data=no_such_data", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "data/no_such_data" in err
    assert browse.main(["cifar10"]) == 2
    assert "Hydra overrides" in capsys.readouterr().err


def test_segmentation_samples_show_their_masks(tmp_path):
    summary = browse.browse(["data=cats"], count=3, columns=3, out=tmp_path / "cats.png")
    assert summary["count"] == 3 and summary["labels"] == ["mask"] * 3
    assert Image.open(tmp_path / "cats.png").size[0] > 300
