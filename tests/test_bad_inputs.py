"""Issue 10's acceptance list: every bad input gets one clear message naming the culprit, a non-zero exit
and no traceback (the full one with ``HYDRA_FULL_ERROR=1``), found before training starts.

The command-line cases run ``train.py`` in one subprocess (``tests/train_batch.py``: each case executes
train.py as ``__main__``, imports paid once), computed once per test session even under xdist; each bad
input is still its own test. The rest go through the DataModule / inference API in-process.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from filelock import FileLock
from hydra.utils import instantiate
from PIL import Image

from lit_vision.errors import UserError, find_user_error, strip_worker_traceback
from tests.fakes import (
    make_image_folder,
    make_index_dataset,
    save_image,
    write_text_file,
    write_truncated_copy,
)
from tests.fakes.segmentation import make_labelme_dataset, make_oxford_pets, make_voc_dataset, shape
from tests.helpers import ROOT, compose_cfg

QUIET = [
    "logger=none",
    "callbacks=[model_checkpoint]",
    "trainer.enable_model_summary=false",
    "trainer.enable_progress_bar=false",
]


def flat(text: str) -> str:
    """Messages are wrapped to the terminal width: compare them with single spaces."""
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------- bad data
def image_folder_args(root: Path, *extra: str) -> list[str]:
    return [
        "data=image_folder",
        f"data.root={root}",
        "data.num_workers=0",
        "data.image_size=16",
        "data.eval_resize=16",
        *extra,
    ]


def good_folder(root: Path, formats=("png", "jpg")) -> Path:
    return make_image_folder(root, per_class=6, size=(20, 24), formats=formats)


def damage_pixel_data(path: Path) -> Path:
    """Overwrite bytes in the middle of a JPEG: its header and end marker stay, decoding fails."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 120] = b"\xff\xd8" * 60
    path.write_bytes(bytes(data))
    return path


def voc_args(root: Path) -> list[str]:
    return [
        "data=segmentation_folder",
        f"data.root={root}",
        "data.num_workers=0",
        "data.image_size=16",
        "model=unet",
        "model.net.init_features=4",
        "model.net.depth=2",
    ]


def write_mask(path: Path, mask: np.ndarray) -> None:
    Image.fromarray(mask.astype(np.uint8), mode="L").save(path)


def edit_labelme(path: Path, **changes) -> None:
    doc = json.loads(path.read_text())
    doc["shapes"][0].update(changes)
    path.write_text(json.dumps(doc))


def index_args(root: Path, *extra: str) -> list[str]:
    return [
        "data=image_list",
        f"data.root={root}",
        "data.num_workers=0",
        "data.image_size=16",
        *extra,
    ]


def index_root(root: Path, extra_line: str) -> Path:
    make_index_dataset(root, classes=("a", "b", "c"), per_split={"train": 3, "valid": 1}, size=16)
    with open(root / "train.txt", "a") as f:
        f.write(extra_line + "\n")
    return root


def write_csv(path: Path, rows: int = 30, **cells: tuple[int, str, str]) -> Path:
    """A CSV of ``x1, x2, y``; ``cells`` replaces single cells: name=(row, column, text)."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.normal(size=rows), "x2": rng.normal(size=rows)})
    frame["y"] = 2 * frame["x1"] - frame["x2"]
    frame = frame.round(4).astype(object)
    for row, column, text in cells.values():
        frame.loc[row, column] = text
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def csv_args(path: Path, *extra: str) -> list[str]:
    return ["data=tabular", f"data.path={path}", "data.target=y", "model=regressor", *extra]


def classification_checkpoint(path: Path) -> Path:
    """A checkpoint of the default digits CNN (10 classes, 1 channel), written without training."""
    cfg = compose_cfg([])
    task = instantiate(cfg.model)
    task.data_info = {"num_classes": 10, "in_channels": 1, "image_size": 8, "class_names": list("0123456789")}
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(task)
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(path)
    return path


def build_cases(base: Path) -> dict[str, dict]:
    """Write every bad input under ``base``; return ``{case: {"argv": [...], "env": {...}}}``."""
    cases: dict[str, list[str]] = {}
    env: dict[str, dict[str, str]] = {}

    cases["missing_root"] = image_folder_args(base / "nowhere")
    (base / "empty").mkdir()
    cases["empty_root"] = image_folder_args(base / "empty")

    root = good_folder(base / "truncated")
    write_truncated_copy(root / "rose" / "rose_001.jpg", root / "rose" / "cut.jpg", keep=0.9)
    cases["truncated_image"] = image_folder_args(root)
    cases["full_error_traceback"] = image_folder_args(root)
    env["full_error_traceback"] = {"HYDRA_FULL_ERROR": "1"}

    root = good_folder(base / "non_image")
    write_text_file(root / "daisy" / "notes.txt")
    cases["non_image_file"] = image_folder_args(root)

    # damage that only decoding finds: reported from a DataLoader worker during the run
    root = good_folder(base / "worker", formats=("jpg",))
    damage_pixel_data(root / "tulip" / "tulip_002.jpg")
    cases["corrupt_image_in_worker"] = image_folder_args(
        root, "data.num_workers=2", "data.batch_size=64", "debug=fast_dev_run"
    )

    root = make_voc_dataset(base / "voc_size", n=6, size=(32, 40))
    write_mask(root / "SegmentationClassPNG" / "0003.png", np.zeros((32, 36)))
    cases["mask_size"] = voc_args(root)

    root = make_voc_dataset(base / "voc_value", n=6, size=(32, 40), num_classes=3)
    bad = np.zeros((32, 40))
    bad[4, 4] = 7
    write_mask(root / "SegmentationClassPNG" / "0002.png", bad)
    cases["mask_value"] = voc_args(root)

    root = make_labelme_dataset(base / "labelme_label", n=6)
    edit_labelme(root / "img_004.json", label="horse")
    cases["labelme_unknown_label"] = voc_args(root)

    root = make_labelme_dataset(base / "labelme_polygon", n=6)
    edit_labelme(root / "img_001.json", shape_type="polygon", points=[[1.0, 1.0], [5.0, 5.0]])
    cases["labelme_short_polygon"] = voc_args(root)

    cases["index_missing_path"] = index_args(index_root(base / "index_path", "data/train/a/gone.png 0"))
    cases["index_bad_label"] = index_args(index_root(base / "index_label", "data/train/a/0_0.png cat"))
    cases["label_out_of_range"] = index_args(
        index_root(base / "index_range", "data/train/a/0_0.png 7"), "data.num_classes=3"
    )

    cases["csv_missing_target"] = csv_args(write_csv(base / "csv" / "plain.csv"), "data.target=price")
    cases["csv_non_numeric"] = csv_args(write_csv(base / "csv" / "text.csv", cell=(6, "x2", "n/a?")))
    cases["csv_nan"] = csv_args(
        write_csv(base / "csv" / "nan.csv", cell=(9, "x1", "NaN")), "data.missing=error"
    )
    cases["csv_infinite"] = csv_args(write_csv(base / "csv" / "inf.csv", cell=(4, "x1", "inf")))

    ckpt = classification_checkpoint(base / "ckpt" / "digits.ckpt")
    labelme = make_labelme_dataset(base / "labelme_ok", n=6)
    cases["checkpoint_of_another_task"] = [*voc_args(labelme), "train=false", f"ckpt_path={ckpt}"]
    cases["checkpoint_of_another_shape"] = ["model.net.channels=[8,16]", f"ckpt_path={ckpt}"]

    cases["bad_config_value"] = image_folder_args(base / "truncated", "data.on_bad_sample=sometimes")
    # start-up checks of data/optim keys (issue 17, point 8): named before any heavy work
    one_class = make_image_folder(base / "one_class", classes=("cat",), per_class=6, size=(20, 24))
    cases["one_class_folder"] = image_folder_args(one_class)
    cases["batch_size_zero"] = ["data.batch_size=0"]
    cases["batch_size_negative"] = ["data.batch_size=-4"]
    cases["batch_size_fraction"] = ["data.batch_size=3.5"]
    cases["num_workers_negative"] = image_folder_args(base / "truncated", "data.num_workers=-1")
    cases["image_size_zero"] = image_folder_args(base / "truncated", "data.image_size=0")
    cases["lr_not_a_number"] = ["optim.lr=1e-3x"]
    cases["unknown_optim_key"] = ["optim.learning_rate=0.01"]
    cases["added_optim_key"] = ["+optim.learning_rate=0.01"]
    cases["unknown_config_key"] = ["data.batchsize=8"]
    cases["wrong_type_trainer"] = ["trainer.max_epochs=abc"]
    cases["wrong_type_data"] = ["data.batch_size=abc"]

    return {
        name: {"argv": [*argv, *QUIET, f"hydra.run.dir={base / 'runs' / name}"], "env": env.get(name, {})}
        for name, argv in cases.items()
    }


@pytest.fixture(scope="session")
def cli_results(tmp_path_factory) -> tuple[dict[str, dict], Path]:
    """Results of every command-line case, computed once per session (shared by xdist workers)."""
    basetemp = tmp_path_factory.getbasetemp()
    shared = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
    base = shared / "bad_inputs_cli"
    with FileLock(str(shared / "bad_inputs_cli.lock")):
        results_file = base / "results.json"
        if not results_file.is_file():
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir()
            cases = build_cases(base)
            (base / "cases.json").write_text(json.dumps(cases, indent=1))
            env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "100"}
            env.pop("HYDRA_FULL_ERROR", None)
            proc = subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "tests" / "train_batch.py"),
                    str(base / "cases.json"),
                    str(results_file),
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert proc.returncode == 0 and results_file.is_file(), proc.stderr[-3000:]
        return json.loads(results_file.read_text()), base


# case -> (exit status, texts the message must contain); status 2 = UserError, 1 = Hydra's config errors
EXPECTED: dict[str, tuple[int, list[str]]] = {
    "missing_root": (2, ["nowhere does not exist", "one sub-folder per class"]),
    "empty_root": (2, ["empty is empty"]),
    "truncated_image": (2, ["rose/cut.jpg: truncated JPEG", "data.on_bad_sample=skip"]),
    "non_image_file": (2, ["daisy/notes.txt: not an image file"]),
    "corrupt_image_in_worker": (2, ["tulip/tulip_002.jpg: cannot be decoded", "data.on_bad_sample=skip"]),
    "mask_size": (2, ["SegmentationClassPNG/0003.png: the mask is 32 x 36", "is 32 x 40"]),
    "mask_value": (2, ["SegmentationClassPNG/0002.png: mask value(s) [7] are not classes"]),
    "labelme_unknown_label": (2, ["img_004.json: shape 0 has label 'horse', which is not in"]),
    "labelme_short_polygon": (
        2,
        ["img_001.json: shape 0 (label", "is a polygon with 2 point(s)", "at least 3"],
    ),
    "index_missing_path": (2, ["train.txt:", "data/train/a/gone.png does not exist"]),
    "index_bad_label": (2, ["train.txt:", "the label 'cat' is not an integer"]),
    "label_out_of_range": (2, ["train.txt:", "label 7", "is outside 0..2", "data.num_classes=3"]),
    "csv_missing_target": (2, ["has no column 'price'", "Its columns are: x1, x2, y"]),
    "csv_non_numeric": (2, ["column 'x2' should hold numbers but has 'n/a?' at line 8"]),
    "csv_nan": (2, ["missing value(s) in column(s) ['x1'] at line 11", "data.missing=drop"]),
    "csv_infinite": (2, ["column 'x1'", "infinite", "line 6"]),
    "checkpoint_of_another_task": (
        2,
        ["digits.ckpt does not fit the configured data", "classification model"],
    ),
    "checkpoint_of_another_shape": (
        2,
        ["net.features.0.weight (16, 1, 5, 5) in the checkpoint vs (8, 1, 5, 5)"],
    ),
    "bad_config_value": (2, ["data.on_bad_sample must be error", "got 'sometimes'"]),
    "one_class_folder": (2, ["data.num_classes is 1 in data.root=", "one_class", "at least two classes"]),
    "batch_size_zero": (2, ["data.batch_size=0 is out of range: it must be at least 1"]),
    "batch_size_negative": (2, ["data.batch_size=-4 is out of range: it must be at least 1"]),
    "batch_size_fraction": (2, ["data.batch_size=3.5 is not a whole number", "e.g. data.batch_size=32"]),
    "num_workers_negative": (2, ["data.num_workers=-1 is out of range: it must be at least 0"]),
    "image_size_zero": (2, ["data.image_size=0 is out of range: it must be at least 1"]),
    "lr_not_a_number": (2, ["optim.lr='1e-3x' is not a positive number", "e.g. optim.lr=0.001"]),
    "unknown_optim_key": (
        2,
        ["optim.learning_rate: optim has no key 'learning_rate'. Did you mean optim.lr?"],
    ),
    "added_optim_key": (
        2,
        ["optim.learning_rate: Adam takes no argument 'learning_rate'. Did you mean optim.lr?"],
    ),
    "unknown_config_key": (2, ["data.batchsize: data has no key 'batchsize'. Did you mean data.batch_size?"]),
    "wrong_type_trainer": (1, ["Value 'abc' of type 'str' could not be converted to Integer", "max_epochs"]),
    "wrong_type_data": (2, ["data.batch_size='abc' is not a whole number", "e.g. data.batch_size=32"]),
}
# Refused while the command line is read, before Hydra makes a run folder.
BEFORE_RUN_FOLDER = {"unknown_optim_key", "unknown_config_key"}
# Problems in the data: found before the first training step.
BEFORE_TRAINING = {name for name, (status, _) in EXPECTED.items() if status == 2} - {
    "corrupt_image_in_worker",
    *BEFORE_RUN_FOLDER,
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_input_gets_one_clear_message_and_a_non_zero_exit(case, cli_results):
    results, base = cli_results
    result = results[case]
    status, texts = EXPECTED[case]
    shown = result["stdout"] + result["stderr"]
    assert result["returncode"] == status, shown[-3000:]
    for text in texts:
        assert text in flat(result["stderr"]), result["stderr"][-3000:]
    assert "Traceback" not in shown and "Caught UserError" not in shown
    if status == 2:
        assert flat(result["stderr"]).count("Error: ") == 1
        assert "(Set HYDRA_FULL_ERROR=1 for the full traceback.)" in result["stderr"]
    if case in BEFORE_RUN_FOLDER:
        assert not (base / "runs" / case).exists()
    if case in BEFORE_TRAINING:
        metrics_file = base / "runs" / case / "metrics.json"
        metrics = json.loads(metrics_file.read_text())
        assert metrics["status"] == "failed" and metrics.get("global_step", 0) == 0
        assert not (base / "runs" / case / "checkpoints").exists()


def test_hydra_full_error_shows_the_whole_traceback(cli_results):
    result = cli_results[0]["full_error_traceback"]
    assert result["returncode"] == 1
    assert "Traceback (most recent call last)" in result["stderr"]
    assert "lit_vision.errors.UserError: 1 image file(s) cannot be used" in result["stderr"]
    assert "cut.jpg" in result["stderr"]


def test_a_worker_error_loses_its_traceback_unless_full_errors_are_asked_for(monkeypatch):
    message = (
        "Caught UserError in DataLoader worker process 1.\nOriginal Traceback (most recent call last):\n"
        '  File "worker.py", line 3, in fetch\n    raise UserError(text)\n'
        "lit_vision.errors.UserError: x.png: cannot be decoded.\nSecond line."
    )
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    assert strip_worker_traceback(message) == "x.png: cannot be decoded.\nSecond line."
    assert str(UserError(message)) == "x.png: cannot be decoded.\nSecond line."
    assert strip_worker_traceback("plain message") == "plain message"
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    assert str(UserError(message)) == message


# ---------------------------------------------------------------------------------------- in-process
def seg_dm(root: Path, **kwargs):
    from lit_vision.data.segmentation import SegmentationFolderDataModule

    kwargs.setdefault("image_size", 16)
    kwargs.setdefault("batch_size", 4)
    return SegmentationFolderDataModule(root=root, **kwargs)


def damage_png_pixels(path: Path) -> None:
    """Overwrite the middle of a PNG's compressed data: header and IEND stay, decoding fails."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 40] = b"\x13" * 40
    path.write_bytes(bytes(data))


def skipped_lines(caplog, name: str) -> int:
    return sum(name in r.getMessage() and r.getMessage().startswith("Skipping") for r in caplog.records)


@pytest.mark.parametrize("labels_txt", [True, False])
def test_segmentation_skip_leaves_unreadable_pairs_out_and_logs_each_once(tmp_path, caplog, labels_txt):
    root = make_labelme_dataset(tmp_path / "d", n=8, size=(24, 28), labels_txt=labels_txt)
    (root / "img_001.png").write_bytes(b"not an image")
    write_truncated_copy(root / "img_002.png", root / "img_002.png", keep=0.6)
    (root / "img_003.json").write_text('{"shapes": [')
    with pytest.raises(UserError, match=r"img_00[13]\.(png: cannot read the image|json: not valid JSON)"):
        seg_dm(root).setup()
    dm = seg_dm(root, on_bad_sample="skip", val_fraction=0.2, test_fraction=0.2)
    with caplog.at_level(logging.INFO, logger="lit_vision"):
        dm.setup()
    used = {name for ds in dm.datasets.values() for name in ds.names}
    assert used.isdisjoint({"img_001", "img_002", "img_003"}) and len(used) == 5
    for name in ("img_001.png", "img_002.png", "img_003.json"):
        assert skipped_lines(caplog, name) == 1
    assert "Skipped 3 unreadable annotated image(s) of 8" in caplog.text
    assert "truncated PNG" in caplog.text and "not an image file" in caplog.text


def test_segmentation_damage_only_decoding_finds_is_named_or_skipped(tmp_path, caplog):
    root = make_voc_dataset(
        tmp_path / "voc", n=6, size=(48, 48), split_lists={"train": [0, 1, 2, 3], "val": [4, 5]}
    )
    damage_png_pixels(root / "JPEGImages" / "0002.png")
    dm = seg_dm(root, cache=False)
    dm.setup()  # the header check cannot see it
    dataset = dm.datasets["train"]
    with pytest.raises(UserError, match=r"JPEGImages/0002.png: cannot read the image"):
        dataset[2]
    dataset.on_bad_sample = "skip"
    with caplog.at_level(logging.WARNING, logger="lit_vision"):
        image, mask = dataset[2]
        dataset[2]
    assert image.shape == (3, 16, 16) and mask.shape == (16, 16)
    assert skipped_lines(caplog, "0002.png") == 1 and "1 skipped so far" in caplog.text
    cached = seg_dm(root, cache=True, on_bad_sample="skip")
    with caplog.at_level(logging.WARNING, logger="lit_vision"):
        cached.setup()
    assert cached.datasets["train"].names == ["0000", "0001", "0003"]
    assert "Skipped 1 unreadable sample(s) of 4 in the train split" in caplog.text


def test_voc_skip_tolerates_a_listed_id_whose_mask_is_unreadable(tmp_path, caplog):
    root = make_voc_dataset(tmp_path / "voc", n=6, split_lists={"train": [0, 1, 2, 3], "val": [4, 5]})
    (root / "SegmentationClassPNG" / "0001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(UserError, match=r"SegmentationClassPNG/0001.png: cannot read the image"):
        seg_dm(root).setup()
    dm = seg_dm(root, on_bad_sample="skip")
    with caplog.at_level(logging.WARNING, logger="lit_vision"):
        dm.setup()
    assert dm.datasets["train"].names == ["0000", "0002", "0003"]
    assert skipped_lines(caplog, "0001.png") == 1


def test_oxford_pets_checks_every_pair_before_training(tmp_path, caplog):
    from lit_vision.data.segmentation import OxfordPetsDataModule

    root = make_oxford_pets(tmp_path, n_cats=5, n_dogs=5, n_test=2)
    kwargs = {"root": root, "image_size": 16, "batch_size": 4, "num_workers": 0, "val_fraction": 0.2}
    trimap = tmp_path / "oxford-iiit-pet" / "annotations" / "trimaps" / "beagle_7.png"
    good_trimap = trimap.read_bytes()
    Image.fromarray(np.full((10, 10), 2, np.uint8)).save(trimap)
    with pytest.raises(UserError, match=r"beagle_7.png: the trimap is 10 x 10 but .*beagle_7.jpg is 40 x 48"):
        OxfordPetsDataModule(**kwargs).setup()
    trimap.write_bytes(good_trimap)
    images = tmp_path / "oxford-iiit-pet" / "images"
    write_truncated_copy(images / "Abyssinian_2.jpg", images / "Abyssinian_2.jpg", keep=0.7)
    with pytest.raises(UserError, match=r"Abyssinian_2.jpg: cannot read the image \(truncated JPEG"):
        OxfordPetsDataModule(**kwargs).setup()
    dm = OxfordPetsDataModule(on_bad_sample="skip", **kwargs)
    with caplog.at_level(logging.WARNING, logger="lit_vision"):
        dm.setup()
    names = [n for split in ("train", "val") for n in dm.datasets[split].names]
    assert len(names) == 9 and "Abyssinian_2" not in names
    assert "Skipped 1 unreadable pet image pair(s) of 10" in caplog.text


def test_segmentation_images_of_other_modes_are_converted_with_one_note(tmp_path, caplog):
    from lit_vision.data.segmentation.images import read_rgb

    root = make_labelme_dataset(tmp_path / "d", n=8, size=(24, 28))
    for name, mode in (("img_000", "L"), ("img_001", "RGBA"), ("img_002", "I;16"), ("img_003", "P")):
        rgb = np.asarray(Image.open(root / f"{name}.png").convert("RGB"))
        save_image(root / f"{name}.png", rgb, mode=mode)
    grey = np.asarray(Image.fromarray(rgb).convert("L"))  # img_003's pixels as 8-bit grey
    save_image(root / "grey16.png", rgb, mode="I;16")
    sixteen = read_rgb(root / "grey16.png")
    (root / "grey16.png").unlink()
    assert (
        sixteen.shape == (24, 28, 3) and np.abs(sixteen[..., 0].astype(int) - grey).max() <= 1
    )  # not clipped
    dm = seg_dm(root)
    with caplog.at_level(logging.INFO, logger="lit_vision"):
        dm.setup()
    notes = [r.getMessage() for r in caplog.records if "converted to 3 channel(s)" in r.getMessage()]
    assert len(notes) == 1 and "4 of 8 images are not RGB" in notes[0] and "I;16: 1" in notes[0]
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape[1] == 3


def test_labelme_photo_with_exif_rotation_matches_its_annotation(tmp_path):
    """labelme shows (and annotates) phone photos rotated by their EXIF tag: so does training."""
    from lit_vision.data.segmentation.folder import SegmentationItem, check_item, load_item
    from lit_vision.data.segmentation.labels import label_set_from_names
    from tests.fakes import write_exif_rotated_jpeg

    stored = np.zeros((20, 30, 3), np.uint8)  # stored 30 wide x 20 high, shown 20 wide x 30 high
    write_exif_rotated_jpeg(tmp_path / "phone.jpg", stored, orientation=6)
    doc = {
        "shapes": [shape("cat", [(1, 1), (10, 1), (10, 20)])],
        "imagePath": "phone.jpg",
        "imageHeight": 30,
        "imageWidth": 20,
    }
    (tmp_path / "phone.json").write_text(json.dumps(doc))
    item = SegmentationItem(name="phone", annotation=tmp_path / "phone.json", kind="labelme")
    labels = label_set_from_names(["_background_", "cat"])
    assert check_item(item, labels, "labels")[:2] == (30, 20)
    image, mask = load_item(item, labels, "labels")
    assert image.shape == (30, 20, 3) and mask.shape == (30, 20)


def test_an_infinite_value_in_a_csv_is_named(tmp_path):
    from lit_vision.data.tabular import TabularDataModule

    path = write_csv(tmp_path / "t.csv", cell=(3, "y", "-inf"))
    with pytest.raises(UserError, match=r"column 'y' has an infinite value .* at line 5"):
        TabularDataModule(path=str(path), target="y").setup()


def test_evaluation_data_is_compared_with_the_checkpoint():
    from lit_vision.inference.checkpoint import checkpoint_data_mismatches

    saved = {"kind": "tabular", "feature_names": ["a", "b"], "target_names": ["y"]}
    current = {"kind": "tabular", "feature_names": ["a", "b", "c"], "target_names": ["y"]}
    assert checkpoint_data_mismatches("regression", saved, current) == [
        "input columns (feature_names): [a, b] in the checkpoint vs [a, b, c] now"
    ]
    image = {"num_classes": 10, "in_channels": 1, "image_size": 28}
    other = {"num_classes": 10, "in_channels": 3, "image_size": 32}
    assert checkpoint_data_mismatches("classification", image, other, {"image_size": 28}) == [
        "in_channels: 1 in the checkpoint vs 3 now",
        "image_size: the net takes 28 pixel inputs vs 32 now",
    ]
    assert checkpoint_data_mismatches("classification", image, dict(image), {"image_size": 28}) == []


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory) -> Path:
    return classification_checkpoint(tmp_path_factory.mktemp("ckpt") / "digits.ckpt")


def cli_error(main, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return flat(err)


def test_predict_and_export_name_what_is_wrong_with_a_checkpoint(digits_ckpt, tmp_path, capsys, monkeypatch):
    from lit_vision.cli.export import main as export_main
    from lit_vision.cli.predict import main as predict_main

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    image = save_image(tmp_path / "in" / "x.png", np.zeros((8, 8, 3), np.uint8))
    text = write_text_file(tmp_path / "notes.ckpt", "not a checkpoint")
    bare = tmp_path / "bare.pt"
    torch.save({"w": torch.zeros(2)}, bare)
    reshaped = tmp_path / "reshaped.ckpt"
    checkpoint = torch.load(digits_ckpt, weights_only=False)
    checkpoint["state_dict"]["net.features.0.weight"] = torch.zeros(8, 1, 5, 5)
    torch.save(checkpoint, reshaped)
    anonymous = tmp_path / "anonymous.ckpt"
    torch.save(
        {k: v for k, v in torch.load(digits_ckpt, weights_only=False).items() if k != "task_class"}, anonymous
    )
    for main in (predict_main, export_main):
        extra = (
            [f"input={image}", f"out={tmp_path / 'out'}"]
            if main is predict_main
            else [f"out={tmp_path / 'm.onnx'}"]
        )
        assert f"{text} is not a readable checkpoint" in cli_error(main, [f"ckpt={text}", *extra], capsys)
        assert "is not a Lightning checkpoint (no state_dict in it)" in cli_error(
            main, [f"ckpt={bare}", *extra], capsys
        )
        message = cli_error(main, [f"ckpt={reshaped}", *extra], capsys)
        assert "size mismatch for net.features.0.weight" in message
        assert "torch.Size([8, 1, 5, 5]) from checkpoint" in message
        message = cli_error(main, [f"ckpt={anonymous}", *extra], capsys)
        assert "anonymous.ckpt does not say which task it holds" in message


def test_partial_loading_names_the_weights_it_skips(digits_ckpt, tmp_path, caplog):
    cfg = compose_cfg(
        [f"model.pretrained_path={digits_ckpt}", "model.num_classes=5", "model.net.num_classes=5"]
    )
    with caplog.at_level(logging.INFO, logger="lit_vision"):
        task = instantiate(cfg.model)
    report = task.pretrained_report
    assert [name for name, _, _ in report["shape_mismatch"]] == ["classifier.weight", "classifier.bias"]
    assert re.search(r"other shape: classifier\.weight \(10, \d+\) vs model \(5, \d+\)", caplog.text)
    unrelated = tmp_path / "unrelated.pt"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, unrelated)
    cfg = compose_cfg([f"model.pretrained_path={unrelated}"])
    with pytest.raises(Exception) as raised:  # Hydra's instantiate wraps it; run.py reports the UserError
        instantiate(cfg.model)
    assert re.search(
        r"no tensor name matches the model .*encoder\.weight", str(find_user_error(raised.value))
    )


# ---------------------------------------------------------------------------------------- fuzzing
# PIL warns about the damaged TIFF tags and EXIF blocks it meets before it rejects a file.
quiet_pil = pytest.mark.filterwarnings("ignore::UserWarning:PIL.*")


class CaseTimeout(Exception):
    """A fuzz case ran past its time limit (a hang)."""


@pytest.fixture
def time_limit():
    """``with time_limit(seconds, what):`` fails the test instead of hanging (SIGALRM, main thread)."""
    import contextlib
    import signal

    @contextlib.contextmanager
    def limit(seconds: float, what: str):
        def expired(signum, frame):
            raise CaseTimeout(f"{what} ran longer than {seconds} s")

        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    return limit


def seed_images() -> dict[str, bytes]:
    """Small valid files of every format the readers accept, to mutate."""
    import io

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    out = {}
    for suffix, fmt, mode in (
        ("png", "PNG", "RGB"),
        ("jpg", "JPEG", "RGB"),
        ("bmp", "BMP", "RGB"),
        ("gif", "GIF", "P"),
        ("webp", "WEBP", "RGB"),
        ("tif", "TIFF", "RGB"),
        ("png", "PNG", "I;16"),
    ):
        buffer = io.BytesIO()
        image = Image.fromarray(rgb).convert("L" if mode == "I;16" else mode)
        if mode == "I;16":
            image = Image.fromarray(np.asarray(image, np.uint16) * 257)
        image.save(buffer, format=fmt)
        out[f"{suffix}-{mode}"] = buffer.getvalue()
    return out


def fuzzed_bytes(case: int, seeds: dict[str, bytes]) -> tuple[str, bytes]:
    """Case ``case``: random bytes, or a valid file with flipped bytes, a damaged header or cut short."""
    import random

    r = random.Random(case)
    key = r.choice(sorted(seeds))
    data = bytearray(seeds[key])
    kind = r.choice(("random", "flip", "header", "cut"))
    if kind == "random":
        data = bytearray(r.randbytes(r.randrange(0, 3000)))
    elif kind == "flip":
        for _ in range(r.randint(1, 30)):
            data[r.randrange(len(data))] = r.randrange(256)
    elif kind == "header":
        for _ in range(r.randint(1, 4)):
            data[r.randrange(min(48, len(data)))] = r.randrange(256)
    else:
        data = data[: r.randrange(1, len(data))]
    return key.split("-")[0], bytes(data)


def fuzz_image_readers(tmp_path: Path, cases: range, time_limit) -> dict[str, int]:
    """Every reader either returns a uint8 image or raises the clear error; counts what happened."""
    from lit_vision.data.image_files import check_image_files
    from lit_vision.data.image_io import BadImageError, decode_image_file, inspect_image
    from lit_vision.data.segmentation.images import image_info, read_index_mask, read_rgb

    seeds = seed_images()
    outcome = {"decoded": 0, "rejected": 0}
    paths = []
    for case in cases:
        suffix, data = fuzzed_bytes(case, seeds)
        path = tmp_path / f"case{case}.{suffix}"
        path.write_bytes(data)
        paths.append(str(path))
        readers = {
            "inspect_image": inspect_image,
            "decode_image_file": lambda p: decode_image_file(p, 3),
            "decode_image_file (grey)": lambda p: decode_image_file(p, 1),
            "segmentation image_info": image_info,
            "segmentation read_rgb": read_rgb,
            "segmentation read_index_mask": read_index_mask,
        }
        for name, reader in readers.items():
            with time_limit(10, f"{name} on case {case}"):
                try:
                    result = reader(path)
                except (BadImageError, UserError) as err:
                    assert str(err), f"{name} on case {case}: an empty message"
                    outcome["rejected"] += 1
                    continue
            if isinstance(result, (np.ndarray, torch.Tensor)):
                assert result.dtype in (np.uint8, torch.uint8), f"{name} on case {case}: {result.dtype}"
            outcome["decoded"] += 1
    with time_limit(60, "check_image_files over every case"):
        headers, bad = check_image_files(paths, full=True)
    assert len(headers) + len(bad) == len(paths) and all(bad.values())
    return outcome


def random_json_value(r, depth: int = 0):
    """A random JSON value of labelme-ish and hostile content (NaN, huge numbers, wrong types...)."""
    makers = [
        lambda: None,
        lambda: r.choice([True, False]),
        lambda: r.randint(-(10**9), 10**9),
        lambda: r.choice([0.5, -1e308, 1e308, float("nan"), float("inf"), 1e-9, 3.0]),
        lambda: r.choice(
            ["", "cat", "dog", "__ignore__", "image.png", "../x.png", "polygon", "mask", "\u00e9" * 9]
        ),
        lambda: r.uniform(-50, 80),
        lambda: [random_json_value(r, depth + 1) for _ in range(r.randrange(5))],
        lambda: {
            r.choice(["label", "points", "shape_type", "mask", "imagePath", "x"]): random_json_value(
                r, depth + 1
            )
            for _ in range(r.randrange(4))
        },
        lambda: [[r.uniform(-50, 80), r.uniform(-50, 80)] for _ in range(r.randrange(6))],
    ]
    return makers[r.randrange(len(makers) if depth < 3 else 6)]()


def random_labelme_document(case: int) -> str:
    import base64
    import random

    r = random.Random(case)
    shape_types = ["polygon", "rectangle", "circle", "line", "linestrip", "point", "mask"]

    def random_shape():
        raw = {
            "label": r.choice(["cat", "_background_", "__ignore__", random_json_value(r)]),
            "points": r.choice(
                [
                    [[r.uniform(-50, 80), r.uniform(-50, 80)] for _ in range(r.randrange(6))],
                    random_json_value(r),
                ]
            ),
            "shape_type": r.choice([*shape_types, random_json_value(r)]),
        }
        if r.random() < 0.3:
            raw["mask"] = r.choice(
                ["", "abc", base64.b64encode(r.randbytes(30)).decode(), random_json_value(r)]
            )
        return {k: v for k, v in raw.items() if r.random() > 0.1}

    doc = {
        "version": "5.4.1",
        "shapes": [random_shape() for _ in range(r.randrange(4))],
        "imagePath": r.choice(["image.png", "missing.png", random_json_value(r)]),
        "imageData": r.choice(
            [None, "", "xyz=", base64.b64encode(r.randbytes(40)).decode(), random_json_value(r)]
        ),
        "imageHeight": r.choice([20, 21, None, random_json_value(r)]),
        "imageWidth": r.choice([24, None, random_json_value(r)]),
    }
    doc = {k: v for k, v in doc.items() if r.random() > 0.1}
    text = json.dumps(random_json_value(r) if r.random() < 0.05 else doc)
    return text[: r.randrange(len(text) + 1)] if r.random() < 0.1 else text


def fuzz_labelme(tmp_path: Path, cases: range, time_limit) -> dict[str, int]:
    from lit_vision.data.segmentation.folder import SegmentationItem, check_item, load_item
    from lit_vision.data.segmentation.labels import label_set_from_names

    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(tmp_path / "image.png")
    labels = label_set_from_names(["__ignore__", "_background_", "cat"])
    outcome = {"loaded": 0, "rejected": 0}
    for case in cases:
        path = tmp_path / f"case{case}.json"
        path.write_text(random_labelme_document(case))
        item = SegmentationItem(name=path.stem, annotation=path, kind="labelme")
        with time_limit(10, f"labelme case {case}"):
            try:
                check_item(item, labels, "labels.txt")
                image, mask = load_item(item, labels, "labels.txt")
            except UserError as err:
                assert str(err).startswith(str(path)), (
                    f"case {case}: the message does not name the file: {err}"
                )
                outcome["rejected"] += 1
                continue
        assert image.shape[:2] == mask.shape and mask.dtype == np.uint8
        outcome["loaded"] += 1
    return outcome


@quiet_pil
def test_fuzzed_image_files_only_ever_give_the_clear_error(tmp_path, time_limit):
    outcome = fuzz_image_readers(tmp_path, range(60), time_limit)
    assert outcome["rejected"] > 100 and outcome["decoded"] > 20  # both paths were exercised


@quiet_pil
def test_random_labelme_json_only_ever_gives_the_clear_error(tmp_path, time_limit):
    outcome = fuzz_labelme(tmp_path, range(200), time_limit)
    assert outcome["rejected"] > 100 and outcome["loaded"] > 0


@quiet_pil
def test_folders_of_random_files_stop_with_one_message_or_are_skipped(tmp_path, time_limit):
    import random

    seeds = seed_images()
    root = good_folder(tmp_path / "images")
    for case in range(12):
        suffix, data = fuzzed_bytes(1000 + case, seeds)
        (root / ("daisy", "rose", "tulip")[case % 3] / f"fuzz{case}.{suffix}").write_bytes(data)
    dm_args = {"root": root, "num_workers": 0, "image_size": 16, "eval_resize": 16, "check_images": "full"}
    from lit_vision.data.image_folder import ImageFolderDataModule

    with (
        time_limit(60, "image folder setup"),
        pytest.raises(UserError, match=r"image file\(s\) cannot be used"),
    ):
        ImageFolderDataModule(**dm_args).setup()
    with time_limit(60, "image folder setup with skip"):
        dm = ImageFolderDataModule(on_bad_sample="skip", **dm_args)
        dm.setup()
        for split in ("train", "val", "test"):
            for batch in dm._loader(split, shuffle=False):
                assert batch[0].dtype == torch.uint8
    labelme = make_labelme_dataset(tmp_path / "labelme", n=6)
    for case in range(6):
        (labelme / f"fuzz{case}.json").write_text(
            random_labelme_document(random.Random(case).randrange(10**6))
        )
    with time_limit(60, "labelme folder setup"), pytest.raises(UserError, match=r"fuzz\d\.json"):
        seg_dm(labelme).setup()


@pytest.mark.slow
@quiet_pil
def test_long_fuzz_of_image_files_and_labelme_json(tmp_path, time_limit):
    (tmp_path / "images").mkdir()
    (tmp_path / "json").mkdir()
    images = fuzz_image_readers(tmp_path / "images", range(100, 3100), time_limit)
    labelme = fuzz_labelme(tmp_path / "json", range(1000, 6000), time_limit)
    assert images["decoded"] > 1000 and labelme["loaded"] > 20
