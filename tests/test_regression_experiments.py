"""Regression end to end: image regression on generated PNGs, and the linear_toy lesson through train.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from lightning import Trainer
from PIL import Image

from lit_vision.data.image_regression import ImageRegressionDataModule
from lit_vision.errors import UserError
from lit_vision.tasks.regression import RegressionTask
from tests.helpers import run_train_py


def write_brightness_set(root, count: int = 24) -> pd.DataFrame:
    """PNGs whose mean brightness is the target (grey and RGB files mixed), listed in labels.csv."""
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    rows = []
    for i in range(count):
        value = float(rng.uniform(0, 255))
        pixels = np.clip(rng.normal(value, 5.0, (20, 24)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels) if i % 2 else Image.fromarray(np.stack([pixels] * 3, axis=-1))
        name = f"img/{i:03d}.png"
        image.save(root / name)
        rows.append({"path": name, "value": round(value, 2)})
    frame = pd.DataFrame(rows)
    frame.to_csv(root / "labels.csv", index=False)
    return frame


def image_dm(root, **kwargs) -> ImageRegressionDataModule:
    defaults = dict(
        root=str(root),
        batch_size=4,
        eval_batch_size=8,
        num_workers=0,
        image_size=16,
        in_channels=3,
        mean=[0.5, 0.5, 0.5],
        std=[0.25, 0.25, 0.25],
        train_transforms=[{"Resize": {"size": [16, 16], "antialias": True}}],
        eval_transforms=[{"Resize": {"size": [16, 16], "antialias": True}}],
    )
    return ImageRegressionDataModule(**{**defaults, **kwargs})


def test_image_regression_fast_dev_run_on_pngs(tmp_path):
    write_brightness_set(tmp_path)
    dm = image_dm(tmp_path, val_fraction=0.25, test_fraction=0.25)
    dm.setup("fit")
    images, targets = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (4, 3, 16, 16)
    assert targets.dtype == torch.float32 and targets.shape == (4, 1)
    info = dm.data_info()
    assert info["target_names"] == ["value"] and info["target_mean"] is not None
    assert info["eval_transforms"] and "num_classes" not in info

    net = {
        "_target_": "lit_vision.nets.regressor.image_regressor",
        "backbone": "simple_cnn",
        "in_channels": 3,
        "image_size": 16,
    }
    task = RegressionTask(net, loss="huber")
    trainer = Trainer(fast_dev_run=True, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(task, datamodule=dm)
    results = trainer.test(task, datamodule=dm, verbose=False)
    assert {"test/mae", "test/rmse", "test/r2"} <= set(results[0])
    assert task.data_info["target_mean"] == info["target_mean"]


def test_image_regression_separate_csvs_and_errors(tmp_path):
    frame = write_brightness_set(tmp_path, count=12)
    frame.iloc[:8].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[8:10].to_csv(tmp_path / "val.csv", index=False)
    frame.iloc[10:].to_csv(tmp_path / "test.csv", index=False)
    dm = image_dm(tmp_path, csv_path="train.csv", val_csv="val.csv", test_csv="test.csv")
    dm.setup("fit")
    assert [len(dm.datasets[k]) for k in ("train", "val", "test")] == [8, 2, 2]
    assert dm.target_mean == pytest.approx([frame.iloc[:8]["value"].mean()])

    broken = frame.copy()
    broken.loc[3, "path"] = "img/missing.png"
    broken.to_csv(tmp_path / "broken.csv", index=False)
    with pytest.raises(UserError, match=r"broken\.csv: 1 image\(s\) do not exist, at line 5"):
        image_dm(tmp_path, csv_path="broken.csv").setup("fit")
    with pytest.raises(UserError, match=r"no column 'age'.*Its columns are: path, value"):
        image_dm(tmp_path, target="age").setup("fit")


def test_linear_toy_recovers_weight_2_and_bias_1(tmp_path):
    """`python train.py experiment=linear_toy` fits y = 2x + 1 to within 0.05."""
    # the experiment's data, model, optimizer and 1000 epochs; only the pictures and the logger are off
    callbacks = "callbacks=[model_checkpoint,linear_coefficients]"
    proc = run_train_py(["experiment=linear_toy", f"hydra.run.dir={tmp_path}", callbacks, "logger=none"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs"] == 1000
    assert metrics["linear/weight"] == pytest.approx(2.0, abs=0.05)
    assert metrics["linear/bias"] == pytest.approx(1.0, abs=0.05)
    assert metrics["test/mae"] < 0.05
