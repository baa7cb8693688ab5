"""The regression task, nets and callbacks: target units, losses, checkpoints, figures, predictions CSV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from lightning import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from lit_vision.callbacks.linear_coefficients import linear_coefficients
from lit_vision.callbacks.regression_figure import ActualVsPredictedFigure
from lit_vision.data.tabular import TabularDataModule
from lit_vision.errors import UserError
from lit_vision.inference.tabular import write_predictions_csv
from lit_vision.nets.regressor import LinearRegressor, MLPRegressor, image_regressor
from lit_vision.tasks.regression import RegressionTask, loss_config


def mlp_config(in_features: int, **kwargs) -> dict:
    return {"_target_": "lit_vision.nets.regressor.MLPRegressor", "in_features": in_features, **kwargs}


def dated_table(path, rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    dates = pd.date_range("2020-01-01", periods=rows, freq="D")
    frame = pd.DataFrame(
        {
            "year": dates.year,
            "month": dates.month,
            "day": dates.day,
            "kind": rng.choice(["p", "q", "r"], rows),
            "x": rng.normal(50.0, 10.0, rows),
        }
    )
    frame["y"] = 1000.0 + 3.0 * frame["x"] + (frame["kind"] == "p") * 20.0
    frame.to_csv(path, index=False)
    return frame


def test_nets_shapes_activations_and_clear_errors():
    x = torch.randn(5, 7)
    for activation in ("relu", "sigmoid", "gelu"):
        net = MLPRegressor(7, out_features=2, hidden=[16, 8], activation=activation, dropout=0.1)
        assert net(x).shape == (5, 2)
    assert isinstance(MLPRegressor(7, hidden=[4], activation="sigmoid").layers[1], torch.nn.Sigmoid)
    skip = MLPRegressor(7, hidden=[4], linear_skip=True)
    assert skip.skip is not None and skip(x).shape == (5, 1)
    assert LinearRegressor(7)(x).shape == (5, 1)
    with pytest.raises(ValueError, match="in_features is null"):
        MLPRegressor(None)
    images = torch.randn(2, 3, 32, 32)
    assert image_regressor("simple_cnn", in_channels=3, image_size=32)(images).shape == (2, 1)
    assert image_regressor("resnet18", in_channels=1, num_outputs=2, weights=None)(images[:, :1]).shape == (
        2,
        2,
    )


def test_loss_names_and_an_unknown_one():
    assert loss_config("huber") == {"_target_": "torch.nn.HuberLoss"}
    assert loss_config({"_target_": "torch.nn.SmoothL1Loss", "beta": 0.5})["beta"] == 0.5
    for name, cls in (
        ("mse", torch.nn.MSELoss),
        ("l1", torch.nn.L1Loss),
        ("smooth_l1", torch.nn.SmoothL1Loss),
    ):
        assert isinstance(RegressionTask(mlp_config(3), loss=name).loss_fn, cls)
    with pytest.raises(UserError, match="not a regression loss"):
        loss_config("cross_entropy")


def test_metrics_and_predictions_are_in_target_units():
    task = RegressionTask(mlp_config(2, hidden=[]))
    task.data_info = {"target_mean": [100.0], "target_std": [10.0]}
    with torch.no_grad():
        task.net.head.weight.zero_()
        task.net.head.bias.fill_(0.5)  # the net says +0.5 std
    inputs, targets = torch.randn(4, 2), torch.tensor([[100.0], [110.0], [90.0], [105.0]])
    assert torch.allclose(task.predict_step((inputs, targets)), torch.full((4, 1), 105.0))
    task.log = task.log_dict = lambda *a, **k: None  # no trainer attached
    out = task._shared_step((inputs, targets), "val")
    assert torch.allclose(out["prediction"], torch.full((4, 1), 105.0))
    # the loss compares standardised values: ((y - 100) / 10 - 0.5)^2
    expected_loss = (((targets - 100.0) / 10.0 - 0.5) ** 2).mean()
    assert torch.isclose(out["loss"], expected_loss)
    assert task.val_metrics["mae"].compute().item() == pytest.approx(6.25)


def run_fit(dm, task, tmp_path, epochs: int = 2, callbacks=()):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/mae", mode="min", save_last=True)
    trainer = Trainer(
        max_epochs=epochs,
        logger=TensorBoardLogger(str(tmp_path), name="tb", version=""),
        callbacks=[checkpoint, *callbacks],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(task, datamodule=dm)
    return trainer, checkpoint


def test_checkpoint_carries_the_scaling_and_predictions_csv_uses_it(tmp_path):
    csv = tmp_path / "table.csv"
    frame = dated_table(csv)
    dm = TabularDataModule(
        path=str(csv), target="y", categorical=["kind"], date=["year", "month", "day"], batch_size=32
    )
    dm.discover()
    task = RegressionTask(mlp_config(dm.num_features, hidden=[8]))
    figure = ActualVsPredictedFigure(save_dir=str(tmp_path / "figures"))
    _, checkpoint = run_fit(dm, task, tmp_path, callbacks=[figure])

    saved = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)
    info = saved["data_info"]
    train = dm.split_frame("train")
    np.testing.assert_allclose(info["feature_mean"][-1], train["x"].mean(), rtol=1e-9)
    np.testing.assert_allclose(info["target_mean"], [train["y"].mean()], rtol=1e-9)
    np.testing.assert_allclose(info["target_std"], [train["y"].std(ddof=0)], rtol=1e-9)
    assert info["categorical"] == {"kind": ["p", "q", "r"]}

    restored = RegressionTask.load_from_checkpoint(checkpoint.best_model_path, weights_only=False).eval()
    assert restored.data_info == info
    out = write_predictions_csv(checkpoint.best_model_path, csv, tmp_path / "pred.csv")
    written = pd.read_csv(out)
    assert list(written.columns) == [*frame.columns, "prediction"]
    with torch.no_grad():
        expected = restored.predict_step(dm.splits["test"].images).numpy()[:, 0]
    test_rows = dm.split_frame("test").index.to_numpy()
    np.testing.assert_allclose(written["prediction"].to_numpy()[test_rows], expected, rtol=1e-4)
    # predictions are in the target's units (around 1000 + 3 * 50), not standardised values
    assert abs(written["prediction"].mean() - frame["y"].mean()) < 100

    # the validation figure was drawn over the dates
    assert figure.last_drawn["val"]["kind"] == "dates"
    assert sorted(p.name for p in (tmp_path / "figures").glob("val_epoch*.png")) == [
        "val_epoch000.png",
        "val_epoch001.png",
    ]

    bad = frame.drop(columns=["x"])
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(UserError, match=r"no column 'x'"):
        write_predictions_csv(restored, tmp_path / "bad.csv", tmp_path / "never.csv")


def test_figure_without_dates_is_a_scatter_and_linear_coefficients_are_in_units(tmp_path):
    from lit_vision.data.linear_toy import LinearToyDataModule

    dm = LinearToyDataModule(seed=0, standardize=True, standardize_target=True, num_val=8, num_test=8)
    dm.discover()
    task = RegressionTask({"_target_": "lit_vision.nets.regressor.LinearRegressor", "in_features": 1})
    figure = ActualVsPredictedFigure(stages=["val"])
    run_fit(dm, task, tmp_path, epochs=1, callbacks=[figure])
    assert figure.last_drawn["val"]["kind"] == "scatter"
    assert (tmp_path / "actual_vs_predicted" / "val_epoch000.png").is_file()
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))

    # set the standardised line to the exact answer: the coefficients must read y = 2x + 1
    info = task.data_info
    x_mean, x_std = info["feature_mean"][0], info["feature_std"][0]
    y_mean, y_std = info["target_mean"][0], info["target_std"][0]
    with torch.no_grad():
        task.net.linear.weight.fill_(2.0 * x_std / y_std)
        task.net.linear.bias.fill_((2.0 * x_mean + 1.0 - y_mean) / y_std)
    found = linear_coefficients(task)
    assert found["weight"] == pytest.approx(2.0, abs=1e-5) and found["bias"] == pytest.approx(1.0, abs=1e-5)
    assert linear_coefficients(RegressionTask(mlp_config(1, hidden=[3]))) is None
