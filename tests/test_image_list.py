"""image_list: the CIFAR-to-PNG tutorial's index files, class names, and every malformed-line error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lit_vision.data.image_list import ImageListDataModule
from lit_vision.errors import UserError
from tests.fakes import make_index_dataset, save_image

SMALL = {"image_size": 32, "num_workers": 0, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


def list_dm(root, **kwargs) -> ImageListDataModule:
    return ImageListDataModule(root=str(root), **{**SMALL, **kwargs})


def test_reads_the_tutorial_layout_with_names_from_classes_txt(tmp_path):
    make_index_dataset(tmp_path, per_split={"train": 3, "valid": 2, "test": 1})
    dm = list_dm(
        tmp_path,
        num_classes=None,
        train_transforms=[{"RandomCrop": {"size": 32, "padding": 4}}, {"RandomHorizontalFlip": {"p": 0.5}}],
    )
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 30, "val": 20, "test": 10}
    assert dm.num_classes == 10 and dm.class_names[:2] == ["airplane", "automobile"]
    first = (tmp_path / "train.txt").read_text().splitlines()[0]
    relative, label = first.split()
    assert dm.datasets["train"].samples[0] == (str(tmp_path / relative), int(label))
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape == (30, 3, 32, 32) and images.dtype == torch.uint8


def test_no_test_index_tests_on_validation_and_names_default_to_numbers(tmp_path):
    make_index_dataset(tmp_path, classes=("a", "b"), per_split={"train": 2, "valid": 1})
    (tmp_path / "classes.txt").unlink()
    dm = list_dm(tmp_path, test_index=None)
    dm.setup()
    assert dm.datasets["test"].samples == dm.datasets["val"].samples
    assert dm.class_names == ["0", "1"]


def test_paths_with_spaces_comments_and_blank_lines(tmp_path):
    for i in range(4):
        save_image(tmp_path / "my images" / f"img {i}.png", np.full((8, 8, 3), 60 * i, np.uint8))
    lines = ["# path label", "", *(f"my images/img {i}.png {label}" for i, label in enumerate([0, 1, 0, 1]))]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "valid.txt").write_text("my images/img 0.png 0\nmy images/img 1.png 1\n")
    dm = list_dm(tmp_path, class_names=["cat", "dog"], eval_transforms=[{"Resize": {"size": [8, 8]}}])
    dm.setup()
    assert len(dm.datasets["train"]) == 4 and dm.class_names == ["cat", "dog"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "data/missing.png 1",
            r"train.txt:2: data/missing.png does not exist \(looked for .*data/missing.png\)",
        ),
        ("{first} cat", r"train.txt:2: the label 'cat' is not an integer"),
        ("lonely.png", r"train.txt:2: expected 'relative/path.png label'"),
        ("{first} 12", r"train.txt:2: label 12 of .* is outside 0..9"),
        ("{first} -1", r"train.txt:2: label -1 of .* is outside 0..9"),
    ],
    ids=["missing-path", "non-integer", "no-label", "too-large", "negative"],
)
def test_bad_index_lines_are_named_with_file_and_line(tmp_path, line, message):
    make_index_dataset(tmp_path, per_split={"train": 1, "valid": 1})
    index = tmp_path / "train.txt"
    lines = index.read_text().splitlines()
    first = lines[0].split()[0]
    lines.insert(1, line.format(first=first))
    index.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=message):
        list_dm(tmp_path, num_classes=10).setup()


def test_several_bad_lines_are_reported_together(tmp_path):
    make_index_dataset(tmp_path, per_split={"train": 1, "valid": 1})
    with open(tmp_path / "valid.txt", "a") as f:
        f.write("a.png 1\nb.png 2\nc.png x\n")
    with pytest.raises(UserError, match=r"^3 bad line\(s\) in the index file .*valid.txt: .*valid.txt:11"):
        list_dm(tmp_path).setup()


def test_missing_index_root_and_names_file(tmp_path):
    with pytest.raises(UserError, match="is not a folder"):
        list_dm(tmp_path / "nowhere").setup()
    tmp_path.joinpath("x").mkdir()
    with pytest.raises(
        UserError, match=r"index file .*train.txt \(data.train_index\) does not exist.*make_index"
    ):
        list_dm(tmp_path / "x").setup()
    make_index_dataset(tmp_path, per_split={"train": 1, "valid": 1})
    with pytest.raises(UserError, match=r"data\.class_names_file .*names\.txt does not exist"):
        list_dm(tmp_path, class_names_file="names.txt").setup()
    (tmp_path / "names.txt").write_text("a\nb\n")
    with pytest.raises(UserError, match="only 2 class names are given"):
        list_dm(tmp_path, class_names_file="names.txt").setup()


def test_empty_index_is_an_error(tmp_path):
    make_index_dataset(tmp_path, per_split={"train": 1, "valid": 1})
    (tmp_path / "valid.txt").write_text("# nothing yet\n")
    with pytest.raises(UserError, match=r"valid\.txt lists no images"):
        list_dm(tmp_path).setup()
