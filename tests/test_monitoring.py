"""Monitoring callbacks: a tiny classifier trained with every callback on, read back from TensorBoard's files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.util import tensor_util

from lit_vision.runs.run import train
from tests.helpers import CONF_DIR, compose_cfg, run_train_py, without_hydra

DIGITS = [str(i) for i in range(10)]
# Two short epochs of the default experiment; every picture drawn whenever it is due (no time budget).
TINY_RUN = [
    "trainer.max_epochs=2",
    "+trainer.limit_train_batches=4",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.log_every_n_steps=2",
    "callbacks.confusion_matrix.max_overhead=null",
    "callbacks.prediction_grid.max_overhead=null",
    "callbacks.histograms.every_n_epochs=1",
    "callbacks.histograms.max_overhead=null",
]


def read_events(folder: Path) -> EventAccumulator:
    """Every event file of a TensorBoard run folder, with nothing sampled away."""
    guidance = {"images": 0, "histograms": 0, "scalars": 0, "tensors": 0, "compressedHistograms": 0}
    accumulator = EventAccumulator(str(folder), size_guidance=guidance)
    accumulator.Reload()
    return accumulator


def train_tiny(run_dir: Path, *overrides: str) -> dict:
    """Train with TINY_RUN plus ``overrides`` in-process, writing into ``run_dir``."""
    cfg = compose_cfg([*TINY_RUN, *overrides], output_dir=run_dir)
    metrics, _ = train(without_hydra(cfg))
    return metrics


@pytest.fixture(scope="module")
def all_callbacks_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("all_callbacks")
    # SGD with a 10x head learning rate: two named param groups for the LR monitor
    train_tiny(run_dir, "callbacks=all", "logger=many", "optim=sgd", "model.lr_multipliers={head: 10}")
    return run_dir


def test_all_callbacks_write_every_kind_of_tensorboard_record(all_callbacks_run):
    events = read_events(all_callbacks_run / "tensorboard")
    tags = events.Tags()

    scalars = set(tags["scalars"])
    assert {"train/loss_step", "train/loss_epoch", "val/loss", "val/acc", "test/acc"} <= scalars
    assert {"train/lr-SGD/base", "train/lr-SGD/net.classifier"} <= scalars  # every param group, by name
    head_lr = events.Scalars("train/lr-SGD/net.classifier")[0].value
    assert head_lr == pytest.approx(10 * events.Scalars("train/lr-SGD/base")[0].value)
    assert "val/acc_best" in scalars

    images = set(tags["images"])
    assert len(events.Images("confusion_matrix/val")) == 2  # one per epoch
    assert len(events.Images("predictions/val")) == 2
    assert {
        "confusion_matrix/test",
        "predictions/test",
        "kernels/features.0",
        "feature_maps/0_input",
    } <= images
    assert {"feature_maps/1_features.1", "feature_maps/2_features.4", "feature_maps/3_features"} <= images

    histograms = set(tags["histograms"])
    for name in ("net.features.0.weight", "net.classifier.bias"):
        assert f"weights/{name}" in histograms
        assert f"gradients/{name}" in histograms
    assert len(events.Histograms("gradients/net.features.0.weight")) == 2
    gradient = events.Histograms("gradients/net.features.0.weight")[0].histogram_value
    assert gradient.num == 16 * 1 * 5 * 5 and gradient.max > gradient.min  # a real, non-zero gradient

    pr_curves = events.PluginTagToContent("pr_curves")
    assert sorted(pr_curves) == sorted(f"pr_curve/{name}" for name in DIGITS)

    assert tags["graph"] is True

    session = events.PluginTagToContent("hparams")[hparams_metadata.SESSION_START_INFO_TAG]
    hparams = hparams_metadata.parse_session_start_info_plugin_data(session).hparams
    # the choices made (issue 17, point 16): each group's option and the keys set on the command line
    choices = {name: hparams[name].string_value for name in ("data", "model", "optim", "callbacks", "logger")}
    assert choices == {"data": "digits", "model": "cnn", "optim": "sgd", "callbacks": "all", "logger": "many"}
    assert hparams["model.lr_multipliers"].string_value == '{"head": 10}'
    assert hparams["trainer.max_epochs"].number_value == 2
    assert hparams["callbacks.histograms.every_n_epochs"].number_value == 1
    assert hparams["seed"].number_value == 42
    assert not [name for name in hparams if name.endswith("_target_") or name.startswith(("paths", "hydra"))]
    assert "optim.lr" not in hparams and "data.batch_size" not in hparams  # defaults: in the choice
    assert hparams_metadata.SESSION_END_INFO_TAG in events.PluginTagToContent("hparams")


def test_scalars_open_on_the_runs_curves_with_train_and_val_charted_together(all_callbacks_run):
    events = read_events(all_callbacks_run / "tensorboard")
    scalars = set(events.Tags()["scalars"])
    assert "epoch" not in scalars  # Lightning's bookkeeping chart
    assert not [tag for tag in scalars if tag.startswith(("best/", "lr-"))]
    layout_event = events.Tensors("custom_scalars__config__")[0]
    from tensorboard.plugins.custom_scalar import layout_pb2

    layout = layout_pb2.Layout()
    layout.ParseFromString(tensor_util.make_ndarray(layout_event.tensor_proto).item())
    charts = {chart.title: list(chart.multiline.tag) for c in layout.category for chart in c.chart}
    assert charts["loss"] == ["^train/loss$", "^val/loss$"] and charts["acc"] == ["^train/acc$", "^val/acc$"]


def test_projector_has_features_thumbnails_and_labels(all_callbacks_run):
    folder = all_callbacks_run / "tensorboard"
    config = (folder / "projector_config.pbtxt").read_text()
    assert 'tensor_name: "test_features' in config and "sprite" in config
    embedding_dirs = [p.parent for p in folder.rglob("tensors.tsv")]
    assert len(embedding_dirs) == 1
    rows = (embedding_dirs[0] / "tensors.tsv").read_text().splitlines()
    assert len(rows) == 256 and len(rows[0].split("\t")) == 32 * 2 * 2  # SimpleCNN's flattened features
    metadata = (embedding_dirs[0] / "metadata.tsv").read_text().splitlines()
    assert metadata[0] == "label\tpredicted" and len(metadata) == 257
    assert {line.split("\t")[0] for line in metadata[1:]} <= set(DIGITS)
    sprite = Image.open(embedding_dirs[0] / "sprite.png")
    assert sprite.size == (16 * 32, 16 * 32)  # 256 thumbnails of 32 px


def test_confusion_matrix_pngs_are_saved_in_the_run_folder(all_callbacks_run):
    folder = all_callbacks_run / "confusion_matrix"
    assert sorted(p.name for p in folder.iterdir()) == ["test.png", "val_epoch000.png", "val_epoch001.png"]
    image = Image.open(folder / "test.png")
    assert image.width > 1000 and image.height > 500  # two readable panels (checked by eye as well)


def test_csv_logger_gets_the_same_scalars(all_callbacks_run):
    with open(all_callbacks_run / "csv" / "metrics.csv") as handle:
        columns = set(csv.DictReader(handle).fieldnames)
    assert {"val/acc", "test/acc", "train/lr-SGD/base", "train/loss_epoch"} <= columns


def test_csv_only_run_skips_tensorboard_output_with_a_warning_and_keeps_the_pngs(tmp_path):
    with pytest.warns(UserWarning, match="no TensorBoard logger is configured"):
        metrics = train_tiny(tmp_path, "callbacks=all", "logger=csv", "trainer.max_epochs=1")
    assert metrics["test/acc"] > 0
    assert not (tmp_path / "tensorboard").exists()
    assert (tmp_path / "confusion_matrix" / "test.png").is_file()
    assert (tmp_path / "csv" / "metrics.csv").is_file()


def test_segmentation_run_logs_pixel_confusion_matrices_and_image_grids(tmp_path):
    """A tiny UNet on the chelsea cat sample with every callback on (segmentation pictures included)."""
    from lit_vision.data.segmentation.sample import write_cats_sample

    train_tiny(
        tmp_path / "run",
        "model=unet",
        "data=cats",
        f"data.root={write_cats_sample(tmp_path / 'cats')}",
        "data.image_size=32",
        "model.net.init_features=4",
        "model.net.depth=2",
        "callbacks=all",
        "callbacks.segmentation_images.max_overhead=null",
    )
    events = read_events(tmp_path / "run" / "tensorboard")
    images = set(events.Tags()["images"])
    assert {
        "segmentation/val",
        "segmentation/test",
        "confusion_matrix/val",
        "confusion_matrix/test",
    } <= images
    assert len(events.Images("segmentation/val")) == 2
    assert not {"predictions/val", "predictions/test"} & images  # classification grids skip masks
    assert {"val/iou", "val/iou_best", "test/iou", "train/lr-Adam/base"} <= set(events.Tags()["scalars"])
    assert "gradients/net.head.weight" in events.Tags()["histograms"]
    assert (tmp_path / "run" / "confusion_matrix" / "test.png").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "segmentation").iterdir()) == [
        "test.png",
        "val_epoch000.png",
        "val_epoch001.png",
    ]
    assert not list((tmp_path / "run" / "tensorboard").rglob("projector_config.pbtxt"))


@pytest.mark.slow
def test_two_process_ddp_gathers_test_predictions_and_draws_once(tmp_path):
    """DDP on 2 CPU processes: every rank feeds the PR curves, rank 0 alone writes, nothing hangs."""
    proc = run_train_py(
        [
            *(o for o in TINY_RUN if not o.startswith("callbacks.")),
            "callbacks=all",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.strategy=ddp",
            f"hydra.run.dir={tmp_path}",
        ],
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = read_events(tmp_path / "tensorboard")
    assert len(events.Images("confusion_matrix/test")) == 1
    curve = tensor_util.make_ndarray(events.Tensors("pr_curve/0")[0].tensor_proto)
    # rows: TP, FP, TN, FN, precision, recall; at the lowest threshold the four counts cover every sample
    assert curve[:4, 0].sum() == 270  # the whole digits test split, half from each rank
    assert (tmp_path / "confusion_matrix" / "test.png").is_file()


def test_regression_run_logs_its_actual_vs_predicted_figure_and_skips_class_pictures(tmp_path):
    """The temperature MLP with every callback on: the class pictures stay out, the regression figure in."""
    pytest.importorskip("lit_vision.tasks.regression", reason="the regression task is not written yet")
    if not (CONF_DIR / "experiment" / "temps.yaml").is_file():
        pytest.skip("conf/experiment/temps.yaml (the regression recipe) is not written yet")
    train_tiny(tmp_path, "experiment=temps", "callbacks=all")
    events = read_events(tmp_path / "tensorboard")
    tags = events.Tags()
    assert {"val/mae", "test/mae", "val/mae_best"} <= set(tags["scalars"])
    images = set(tags["images"])
    assert images, "no actual-vs-predicted figure: add the regression figure callback to callbacks/default"
    assert not [t for t in images if t.startswith(("confusion_matrix/", "predictions/", "segmentation/"))]
    assert not (tmp_path / "confusion_matrix").exists()
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")
    assert [t for t in tags["histograms"] if t.startswith("gradients/")]
