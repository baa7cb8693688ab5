"""Predicting with trained checkpoints: CSV/mask files equal to running the model directly, preprocessing of
unusual image files like training's, TTA, precision overrides, bad inputs and the command line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from lit_vision.data.image_files import ImageFileDataset, _build_pipeline
from lit_vision.errors import UserError
from lit_vision.inference.api import predict
from lit_vision.inference.checkpoint import load_model
from lit_vision.inference.inputs import find_images
from lit_vision.inference.preprocess import ImagePreprocessor
from lit_vision.runs.run import train
from lit_vision.viz.segmentation import probs_to_mask
from tests.fakes import (
    make_cat_to_name,
    make_image_folder,
    save_image,
    write_exif_rotated_jpeg,
    write_garbage_image,
    write_text_file,
)
from tests.helpers import ROOT, compose_cfg, train_tiny_segmenter, without_hydra

FLOWERS = {"21": "fire lily", "3": "canterbury bells", "45": "bolero deep blue"}
TINY_RUN = [
    "logger=none",
    "callbacks=[model_checkpoint]",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A CNN trained one epoch on an image folder with display names (flowers' cat_to_name.json)."""
    tmp = tmp_path_factory.mktemp("classifier")
    root = make_image_folder(tmp / "data", classes=tuple(FLOWERS), per_class=6, size=(40, 48))
    make_cat_to_name(root, FLOWERS)
    cfg = compose_cfg(
        [
            "data=image_folder",
            f"data.root={root}",
            "data.class_map=cat_to_name.json",
            "data.image_size=32",
            "data.eval_resize=36",
            "data.num_workers=0",
            "model=cnn",
            *TINY_RUN,
        ],
        output_dir=tmp / "run",
    )
    metrics, _ = train(without_hydra(cfg))
    return Path(metrics["best_model_path"]), root, cfg


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    """A small binary UNet trained one epoch on labelme cats of 32x40, resized to 32x32 for the net."""
    ckpt, root, _ = train_tiny_segmenter(tmp_path_factory.mktemp("segmenter"))
    return ckpt, root


# ------------------------------------------------------------------------------------------ classification
def direct_probabilities(ckpt: Path, cfg, paths: list[str]) -> torch.Tensor:
    """Softmax outputs through the training DataModule's own eval dataset and normalisation."""
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    task = load_model(ckpt).task
    dataset = ImageFileDataset([(p, 0) for p in paths], datamodule.eval_transform, channels=3)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        return task(datamodule.normalize(images)).softmax(dim=1)


def test_classification_csv_matches_the_model_and_names_classes(classifier, tmp_path):
    ckpt, root, cfg = classifier
    summary = predict(ckpt, root, tmp_path / "out", top_k=2, batch_size=7)
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    images = find_images(root)
    assert summary["count"] == len(rows) == len(images) == 18
    assert list(rows[0]) == [
        "file",
        *(f"top{k}_{c}" for k in (1, 2) for c in ("index", "label", "name", "prob")),
    ]
    expected = direct_probabilities(ckpt, cfg, [i.path for i in images])
    for row, image, probs in zip(rows, images, expected, strict=True):
        assert row["file"] == image.name
        top = probs.topk(2)
        assert [int(row["top1_index"]), int(row["top2_index"])] == top.indices.tolist()
        assert float(row["top1_prob"]) == pytest.approx(top.values[0].item(), abs=1e-5)
        assert float(row["top2_prob"]) == pytest.approx(top.values[1].item(), abs=1e-5)
        index = int(row["top1_index"])
        folders = sorted(FLOWERS)  # ImageFolder sorts the class folders
        assert row["top1_label"] == folders[index] and row["top1_name"] == FLOWERS[folders[index]]
    grid = Image.open(tmp_path / "out" / "predictions_grid.png")
    assert grid.width > 8 * 128 and grid.height > 2 * 128  # 16 tiles, 8 per row
    saved = json.loads((tmp_path / "out" / "predict.json").read_text())
    assert saved["task"] == "classification" and saved["count"] == 18 and saved["tta"] is False


def test_tta_averages_with_the_mirrored_image_and_precision_override_runs(classifier, tmp_path):
    ckpt, root, _cfg = classifier
    photo = find_images(root)[:3]
    subset = tmp_path / "in"
    for image in photo:
        target = subset / image.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(image.path).read_bytes())
    predict(ckpt, subset, tmp_path / "tta", tta=True, grid=0)
    rows = read_csv(tmp_path / "tta" / "predictions.csv")
    task = load_model(ckpt).task
    preprocess = ImagePreprocessor(task.data_info, "classification")
    batch = preprocess.normalize(torch.stack([preprocess(i.path)[0] for i in photo]))
    with torch.no_grad():
        mean = (task(batch).softmax(1) + task(batch.flip(-1)).softmax(1)) / 2
    for row, probs in zip(rows, mean, strict=True):
        assert float(row["top1_prob"]) == pytest.approx(probs.max().item(), abs=1e-5)
    assert not (tmp_path / "tta" / "predictions_grid.png").exists()  # grid=0

    summary = predict(
        ckpt, subset, tmp_path / "bf16", trainer={"accelerator": "cpu", "precision": "bf16-mixed"}
    )
    assert summary["precision"] == "bf16-mixed" and summary["accelerator"] == "CPUAccelerator"
    half = read_csv(tmp_path / "bf16" / "predictions.csv")
    full = read_csv(tmp_path / "tta" / "predictions.csv")
    for a, b in zip(half, full, strict=True):
        assert float(a["top1_prob"]) == pytest.approx(float(b["top1_prob"]), abs=0.05)


# ------------------------------------------------------------------------------------------ segmentation
def test_segmentation_masks_and_overlays_at_the_photo_size_equal_the_model(segmenter, tmp_path):
    ckpt, root = segmenter
    summary = predict(ckpt, root, tmp_path / "out", threshold=0.4, alpha=0.3)
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert summary["count"] == len(rows) == 6
    assert list(rows[0]) == [
        "file",
        "mask",
        "overlay",
        "height",
        "width",
        "fraction_background",
        "fraction_cat",
    ]
    task = load_model(ckpt).task
    preprocess = ImagePreprocessor(task.data_info, "segmentation")
    for row in rows:
        path = root / row["file"]
        photo = np.asarray(Image.open(path).convert("RGB"))
        image = preprocess(str(path))[0]
        assert image.shape == (3, 32, 32)
        with torch.no_grad():
            probs = task.probabilities(task(preprocess.normalize(image[None])))[0]
        expected = probs_to_mask(probs, (32, 40), threshold=0.4)
        mask = Image.open(tmp_path / "out" / row["mask"])
        assert (
            mask.mode == "P" and mask.size == (40, 32) and (int(row["height"]), int(row["width"])) == (32, 40)
        )
        np.testing.assert_array_equal(np.asarray(mask), expected)
        assert float(row["fraction_cat"]) == pytest.approx(expected.mean(), abs=1e-9)
        overlay = np.asarray(Image.open(tmp_path / "out" / row["overlay"]).convert("RGB")).astype(float)
        colours = np.asarray(mask.convert("RGB")).astype(float)
        np.testing.assert_allclose(overlay, 0.7 * photo + 0.3 * colours, atol=1.01)


def test_segmentation_tta_flips_the_mirror_back_and_threshold_checks(segmenter, tmp_path):
    ckpt, root = segmenter
    one = root / "img_000.png"
    predict(ckpt, one, tmp_path / "out", tta=True)
    task = load_model(ckpt).task
    preprocess = ImagePreprocessor(task.data_info, "segmentation")
    x = preprocess.normalize(preprocess(str(one))[0][None])
    with torch.no_grad():
        probs = (task.probabilities(task(x)) + task.probabilities(task(x.flip(-1))).flip(-1)) / 2
    expected = probs_to_mask(probs[0], (32, 40), threshold=task.hparams.threshold)
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "out" / "masks" / "img_000.png")), expected
    )
    with pytest.raises(UserError, match="between 0 and 1"):
        predict(ckpt, one, tmp_path / "bad", threshold=1.5)


def test_a_new_prediction_leaves_no_stale_masks_beside_its_own(segmenter, tmp_path):
    ckpt, root = segmenter
    out = tmp_path / "out"
    predict(ckpt, root, out)  # six photos
    predict(ckpt, root / "img_002.png", out)
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["img_002.png"]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["img_002.png"]
    assert [row["file"] for row in read_csv(out / "predictions.csv")] == ["img_002.png"]
    with pytest.raises(UserError, match="between 0 and 1"):  # refused: the last results stay as they were
        predict(ckpt, root, out, threshold=1.5)
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["img_002.png"]


# ------------------------------------------------------------------------------------------ checkpoints
def test_every_kind_of_lit_vision_checkpoint_loads_as_plain_data(classifier, segmenter, tabular_regressor):
    """The allow-list of lit_vision.inference.trust stays empty only while this holds."""
    for ckpt in (classifier[0], segmenter[0], tabular_regressor):
        for path in ckpt.parent.glob("*.ckpt"):
            assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == [], path
            assert "state_dict" in torch.load(path, weights_only=True)


def test_the_best_checkpoint_has_a_stable_name_recorded_in_metrics(classifier):
    ckpt = classifier[0]
    best = ckpt.parent / "best.ckpt"
    assert best.is_symlink() and os.readlink(best) == ckpt.name
    metrics = json.loads((ckpt.parent.parent / "metrics.json").read_text())
    assert metrics["best_ckpt"] == "checkpoints/best.ckpt" and metrics["best_model_path"] == str(ckpt)
    assert load_model(best).task.data_info == load_model(ckpt).task.data_info


# ------------------------------------------------------------------------------------------ image files
INFO = {"in_channels": 3, "image_size": 24, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


def rgb(height: int = 24, width: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "LA"])
def test_other_modes_are_converted_like_the_training_loader(mode, tmp_path):
    path = save_image(tmp_path / f"x_{mode.replace(';', '')}.png", rgb(), mode)
    preprocess = ImagePreprocessor(INFO, "classification")
    image, size = preprocess(str(path))
    assert image.shape == (3, 24, 24) and image.dtype == torch.uint8 and size == (24, 24)
    # what training's file loader gives for the same file
    training = ImageFileDataset([(str(path), 0)], None, channels=3)[0][0]
    assert torch.equal(image, training)
    pil = Image.open(path)
    if mode in ("L", "LA"):
        grey = np.asarray(pil.convert("L"))
        assert all(np.array_equal(image[c].numpy(), grey) for c in range(3))
    elif mode == "I;16":
        expected = np.rint(np.asarray(pil, dtype=np.float64) * 255 / 65535).astype(np.uint8)
        assert np.array_equal(image[0].numpy(), expected)
    else:  # RGBA drops alpha, palette images become their colours
        assert np.array_equal(image.permute(1, 2, 0).numpy(), np.asarray(pil.convert("RGB")))


def test_exif_rotation_other_sizes_and_grey_models(tmp_path):
    stored = rgb(16, 24)
    path = write_exif_rotated_jpeg(tmp_path / "phone.jpg", stored, orientation=6)
    seg = ImagePreprocessor({**INFO, "image_size": [24, 16]}, "segmentation")
    image, size = seg(str(path))
    assert size == (24, 16)  # displayed upright: the 24x16 stored pixels turned by 90 degrees
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.abs(image.permute(1, 2, 0).numpy().astype(int) - upright.astype(int)).max() <= 1
    big = save_image(tmp_path / "big.png", rgb(60, 90))
    cls = ImagePreprocessor(INFO, "classification")
    assert cls(str(big))[0].shape == (3, 24, 24) and cls(str(big))[1] == (60, 90)
    grey = ImagePreprocessor({**INFO, "in_channels": 1, "mean": [0.5], "std": [0.5]}, "classification")
    out = grey(str(big))[0]
    assert out.shape == (1, 24, 24)
    normalised = grey.normalize(out[None])
    assert torch.allclose(normalised, (out[None].float() / 255 - 0.5) / 0.5)


def test_file_sets_replay_their_eval_transforms(tmp_path):
    items = [{"Resize": {"size": 28, "antialias": True}}, {"CenterCrop": {"size": 24}}]
    path = save_image(tmp_path / "a.png", rgb(40, 56))
    image, _ = ImagePreprocessor({**INFO, "eval_transforms": items}, "classification")(str(path))
    training = ImageFileDataset([(str(path), 0)], _build_pipeline(items, "eval_transforms"), channels=3)[0][0]
    assert torch.equal(image, training)


def test_unreadable_and_missing_inputs_are_refused_or_skipped(classifier, tmp_path):
    ckpt, _root, _ = classifier
    folder = tmp_path / "in"
    save_image(folder / "good.png", rgb(40, 48))
    write_garbage_image(folder / "broken.png")
    write_text_file(folder / "notes.txt")  # not an image name: never read
    with pytest.raises(UserError, match=r"broken\.png.*on_bad_image=skip"):
        predict(ckpt, folder, tmp_path / "out")
    summary = predict(ckpt, folder, tmp_path / "out", on_bad_image="skip")
    assert summary["count"] == 1 and summary["skipped"] == [str(folder / "broken.png")]
    with pytest.raises(UserError, match="holds no image files"):
        find_images(_empty(tmp_path))
    with pytest.raises(UserError, match="neither an image"):
        find_images(folder / "notes.txt")
    with pytest.raises(UserError, match="no such checkpoint"):
        predict(tmp_path / "missing.ckpt", folder, tmp_path / "o3")


def _empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_csv_of_files_keeps_its_order_and_names(classifier, tmp_path):
    ckpt, root, _ = classifier
    images = find_images(root)[:4][::-1]
    listing = tmp_path / "list.csv"
    listing.write_text("file,note\n" + "".join(f"{Path(i.path).resolve()},x\n" for i in images))
    predict(ckpt, listing, tmp_path / "out", grid=0)
    assert [r["file"] for r in read_csv(tmp_path / "out" / "predictions.csv")] == [
        str(Path(i.path).resolve()) for i in images
    ]


# ------------------------------------------------------------------------------------------ command line
def test_predict_command_line_with_trainer_overrides(classifier, tmp_path):
    ckpt, root, _ = classifier
    env = {"OMP_NUM_THREADS": "1", "LIT_VISION_PROGRESS": "0", "PATH": "/usr/bin:/bin"}
    command = [
        sys.executable,
        "-m",
        "lit_vision.cli.predict",
        f"ckpt={ckpt}",
        f"input={root}",
        f"out={tmp_path / 'o'}",
    ]
    proc = subprocess.run(
        [*command, "trainer=cpu", "trainer.precision=bf16-mixed", "top_k=1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "18 classification predictions" in proc.stdout
    assert len(read_csv(tmp_path / "o" / "predictions.csv")[0]) == 5  # file + one top-1 group
    from lit_vision.cli.predict import main as predict_main

    with pytest.raises(SystemExit) as exited:
        predict_main([f"ckpt={ckpt}", f"input={root}", "batch_sze=3"])
    assert "no such option" in str(exited.value) and "batch_size" in str(exited.value)


# ------------------------------------------------------------------------------------------ regression
def write_table(path: Path, rows: int, seed: int = 0) -> Path:
    """A CSV with two numbers, a category and ``y = 2 x1 - x2 + offset(city)``."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.uniform(0, 10, rows), rng.uniform(-5, 5, rows)
    city = rng.choice(["Oslo", "Lima", "Pune"], rows)
    offset = {"Oslo": 0.0, "Lima": 5.0, "Pune": -3.0}
    y = 2 * x1 - x2 + np.array([offset[c] for c in city])
    import pandas as pd

    pd.DataFrame({"x1": x1, "x2": x2, "city": city, "y": y}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def tabular_regressor(tmp_path_factory):
    """An MLP regressor trained one epoch on a generated CSV (numbers + a one-hot city)."""
    tmp = tmp_path_factory.mktemp("tabular")
    table = write_table(tmp / "train.csv", 120)
    cfg = compose_cfg(
        [
            "data=tabular",
            f"data.path={table}",
            "data.target=y",
            "data.categorical=[city]",
            "model=regressor",
            *TINY_RUN,
        ],
        output_dir=tmp / "run",
    )
    metrics, _ = train(without_hydra(cfg))
    return Path(metrics["best_model_path"])


def test_tabular_regression_appends_predictions_equal_to_the_model(tabular_regressor, tmp_path):
    new = write_table(tmp_path / "new.csv", 9, seed=5)
    import pandas as pd

    pd.read_csv(new).drop(columns=["y"]).to_csv(new, index=False)  # new rows have no target
    summary = predict(tabular_regressor, new, tmp_path / "out")
    result = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert summary["task"] == "regression" and summary["count"] == 9
    assert list(result.columns) == ["x1", "x2", "city", "prediction"]
    model = load_model(tabular_regressor)
    from lit_vision.data.tabular import TabularPreprocessor

    rows = TabularPreprocessor.from_info(model.data_info).transform(pd.read_csv(new))
    with torch.no_grad():
        expected = model.task.predict_step(torch.from_numpy(rows))[:, 0].numpy()
    np.testing.assert_allclose(result["prediction"].to_numpy(), expected, rtol=1e-5, atol=1e-4)
    frame = pd.read_csv(new)
    frame.loc[4, "city"] = "Rome"
    frame.to_csv(tmp_path / "unknown.csv", index=False)
    with pytest.raises(UserError, match=r"'Rome' at line 6"):
        predict(tabular_regressor, tmp_path / "unknown.csv", tmp_path / "o2")
    with pytest.raises(UserError, match="table rows"):
        predict(tabular_regressor, tmp_path, tmp_path / "o3")
    with pytest.raises(UserError, match="would be overwritten"):
        predict(tabular_regressor, tmp_path / "out" / "predictions.csv", tmp_path / "out")


def test_image_regression_writes_file_and_prediction(tmp_path):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    lines = ["path,value"]
    for i in range(24):
        level = int(rng.integers(20, 235))
        save_image(root / "img" / f"{i:02d}.png", np.full((20, 24, 3), level, np.uint8))
        lines.append(f"img/{i:02d}.png,{level / 255:.4f}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    cfg = compose_cfg(
        [
            "data=image_regression",
            f"data.root={root}",
            "data.image_size=16",
            "data.num_workers=0",
            "model=image_regressor",
            *TINY_RUN,
        ],
        output_dir=tmp_path / "run",
    )
    metrics, _ = train(without_hydra(cfg))
    summary = predict(metrics["best_model_path"], root / "img", tmp_path / "out", tta=True)
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert summary["count"] == len(rows) == 24 and list(rows[0]) == ["file", "prediction"]
    model = load_model(metrics["best_model_path"])
    preprocess = ImagePreprocessor(model.data_info, "regression")
    x = preprocess.normalize(torch.stack([preprocess(str(root / "img" / r["file"]))[0] for r in rows]))
    with torch.no_grad():
        expected = (model.task.predict_step(x) + model.task.predict_step(x.flip(-1))) / 2
    np.testing.assert_allclose(
        [float(r["prediction"]) for r in rows], expected[:, 0].numpy(), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_png_exif_orientation_and_modes_match_pil(orientation, tmp_path):
    from lit_vision.data.image_io import decode_image_file

    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.png"
    Image.fromarray(rgb(10, 18)).convert("P").save(path, exif=exif.tobytes())
    upright = ImageOps.exif_transpose(Image.open(path))
    for channels, mode in ((3, "RGB"), (1, "L")):
        image = decode_image_file(path, channels)
        expected = np.asarray(upright.convert(mode)).reshape(upright.height, upright.width, channels)
        assert image.dtype == torch.uint8 and np.array_equal(image.permute(1, 2, 0).numpy(), expected)
    stored = decode_image_file(path, 3, exif_orientation=False)
    assert stored.shape == (3, 10, 18)


def test_prefetched_batches_keep_their_order_and_raise_where_the_error_is():
    import threading

    from lit_vision.inference.data import prefetched

    def batches():
        yield from range(5)
        raise UserError("file 5 is broken")

    seen = []
    with pytest.raises(UserError, match="file 5"):
        for item in prefetched(batches(), depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]

    def endless():
        n = 0
        while True:
            yield n
            n += 1

    stream = prefetched(endless(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()  # an abandoned prediction: the thread stops instead of filling memory
    workers = [t for t in threading.enumerate() if t.name == "lit_vision-predict-decode"]
    for thread in workers:
        thread.join(timeout=5)
    assert not any(t.is_alive() for t in workers)


def test_decoding_workers_start_only_for_many_bytes(tmp_path, monkeypatch):
    import lit_vision.inference.data as data

    paths = [save_image(tmp_path / f"{i}.png", rgb(seed=i)) for i in range(4)]
    images = find_images(tmp_path)
    assert data.default_workers(images) == 0  # a few KB: decoded in the main process
    monkeypatch.setattr(data, "INLINE_DECODE_BYTES", sum(p.stat().st_size for p in paths))
    monkeypatch.setattr(data.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert data.default_workers(images) == 4
