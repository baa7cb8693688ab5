"""``predict()``: a checkpoint + image files (or a table) -> prediction files, through ``Trainer.predict``."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, RichProgressBar

from lit_vision.errors import UserError
from lit_vision.inference.checkpoint import LoadedModel, load_model, require_keys
from lit_vision.inference.data import PredictionDataModule, TablePredictionDataModule
from lit_vision.inference.inputs import find_images
from lit_vision.inference.multilabel_writer import MultiLabelWriter
from lit_vision.inference.output_folder import MARKER_NAME, OutputFolder, check_output_folder
from lit_vision.inference.predictor import Predictor
from lit_vision.inference.preprocess import ImagePreprocessor
from lit_vision.inference.test_time import TestTimeOptions
from lit_vision.inference.writers import (
    ClassificationWriter,
    CsvPredictionWriter,
    ImageRegressionWriter,
    SegmentationWriter,
    TableWriter,
)
from lit_vision.utils.io import write_json
from lit_vision.utils.progress import progress_enabled
from lit_vision.utils.reporting import quiet_known_noise

log = logging.getLogger("lit_vision")

SUMMARY_NAME = MARKER_NAME


def build_trainer(settings: Mapping[str, Any] | None, out_dir: Path, callbacks: list[Callback]) -> L.Trainer:
    """A Trainer for prediction from Trainer arguments (``_target_`` allowed, as in ``conf/trainer``):
    no logger, no checkpointing, one device; a rich progress bar unless switched off."""
    settings = dict(settings or {})
    for key in ("callbacks", "logger", "enable_checkpointing", "enable_model_summary"):
        settings.pop(key, None)  # set below: prediction keeps no logs or checkpoints
    settings["default_root_dir"] = str(out_dir)
    if settings.get("enable_progress_bar", True) and progress_enabled():
        callbacks = [*callbacks, RichProgressBar()]
    else:
        settings["enable_progress_bar"] = False
    extra = {
        "callbacks": callbacks,
        "logger": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
    }
    trainer = instantiate(settings, **extra) if "_target_" in settings else L.Trainer(**settings, **extra)
    if trainer.world_size > 1:
        raise UserError(
            f"predict runs on one device (trainer.devices=1); this trainer spans {trainer.world_size} processes."
        )
    return trainer


def image_writer(
    model: LoadedModel,
    images: list,
    out_dir: Path,
    top_k: int,
    grid: int,
    threshold: float | None,
    alpha: float,
) -> CsvPredictionWriter:
    """The writer for ``model``'s kind of outputs."""
    if model.kind == "classification":
        return ClassificationWriter(
            out_dir,
            images,
            model.class_names,
            labels=model.data_info.get("folder_names"),
            top_k=top_k,
            grid=grid,
            data_info=model.data_info,
        )
    if model.kind == "multilabel":
        return MultiLabelWriter(out_dir, images, model.class_names, multilabel_thresholds(model, threshold))
    if model.kind == "segmentation":
        binary = bool(model.task.hparams.get("binary"))
        if threshold is not None and not binary:
            raise UserError(
                "threshold= applies to binary segmentation models (one foreground class); this model has "
                f"{len(model.class_names)} classes and predicts each pixel's most probable class."
            )
        if threshold is not None and not 0.0 < float(threshold) < 1.0:
            raise UserError(f"threshold must be between 0 and 1, got {threshold}.")
        used = float(threshold if threshold is not None else model.task.hparams.get("threshold", 0.5))
        return SegmentationWriter(
            out_dir,
            images,
            model.class_names,
            threshold=used if binary else None,
            alpha=alpha,
            palette=model.data_info.get("palette"),
        )
    return ImageRegressionWriter(out_dir, images, target_names(model))


def multilabel_thresholds(model: LoadedModel, threshold: float | None) -> list[float]:
    """The per-label thresholds of a multi-label model (chosen on validation), or ``threshold`` for all."""
    if threshold is None:
        return [float(t) for t in model.task.thresholds.tolist()]
    if not 0.0 < float(threshold) < 1.0:
        raise UserError(f"threshold must be between 0 and 1, got {threshold}.")
    return [float(threshold)] * len(model.class_names)


def target_names(model: LoadedModel) -> list[str]:
    """The regression model's target column names (``target``... when the data gave none)."""
    names = model.data_info.get("target_names")
    count = int(model.task.hparams.get("num_targets") or len(names or []) or 1)
    if names and len(names) == count:
        return [str(n) for n in names]
    return ["target"] if count == 1 else [f"target_{i}" for i in range(count)]


def is_tabular(model: LoadedModel) -> bool:
    """Whether the model predicts from table rows (a tabular DataModule trained it)."""
    return model.kind == "regression" and model.data_info.get("kind") == "tabular"


def table_parts(
    model: LoadedModel, source: str | Path, out_dir: Path, batch_size: int
) -> tuple[TablePredictionDataModule, TableWriter]:
    """``(datamodule, writer)`` for a CSV of rows, prepared exactly as training prepared its rows."""
    # imported here: pandas loads only for table predictions
    from lit_vision.data.tabular import TabularPreprocessor, read_csv

    path = Path(source).expanduser()
    preprocessor = TabularPreprocessor.from_info(model.data_info)
    if path.suffix.lower() != ".csv" or path.is_dir():
        raise UserError(
            f"input={source}: this model predicts from table rows; give a CSV file with the columns "
            f"{', '.join(preprocessor.input_columns)}."
        )
    frame = read_csv(path, "input")
    features = torch.from_numpy(preprocessor.transform(frame, f"input={path}"))
    writer = TableWriter(out_dir, frame, target_names(model))
    replaced = [c for c in writer.columns if c in frame.columns]
    if replaced:
        log.warning(
            "input=%s already has column(s) %s; predictions.csv holds the new values.", path, replaced
        )
    return TablePredictionDataModule(features, model.data_info, batch_size), writer


def image_parts(
    model: LoadedModel,
    source: str | Path,
    out_dir: Path,
    batch_size: int,
    num_workers: int | None,
    on_bad_image: str,
    top_k: int,
    grid: int,
    threshold: float | None,
    alpha: float,
    exclude: Sequence[Path] = (),
    tiling: bool = False,
) -> tuple[PredictionDataModule, CsvPredictionWriter]:
    """``(datamodule, writer)`` for image files, prepared as the checkpoint's eval pipeline did (folders in
    ``exclude`` are not searched for images). With ``tiling`` images keep their size (no resize to the
    training size) and go one per batch: the sliding window batches their tiles."""
    require_keys(model, ("in_channels", "mean", "std"), "predicting from image files")
    preprocess = ImagePreprocessor(model.data_info, model.kind, full_size=tiling)
    if tiling:
        batch_size = 1
    images = find_images(source, exclude=exclude)
    writer = image_writer(model, images, out_dir, top_k, grid, threshold, alpha)
    datamodule = PredictionDataModule(
        images, preprocess, model.data_info, batch_size, num_workers, on_bad_image
    )
    return datamodule, writer


def predict(
    ckpt: str | Path,
    input: str | Path,
    out: str | Path = "predictions",
    *,
    batch_size: int = 64,
    num_workers: int | None = None,
    top_k: int = 5,
    tta: bool = False,
    tta_flips: Sequence[str] = ("h",),
    tta_scales: Sequence[float] = (1.0,),
    tiling: bool = False,
    tile: int | Sequence[int] | None = None,
    stride: int | Sequence[int] | None = None,
    tile_window: str = "gaussian",
    tile_batch_size: int = 16,
    threshold: float | None = None,
    alpha: float = 0.3,
    grid: int = 16,
    on_bad_image: str = "error",
    channels_last: bool | str = "auto",
    trainer: Mapping[str, Any] | None = None,
    trust_checkpoint: bool = False,
) -> dict[str, Any]:
    """Predict every input with the checkpoint's model and write the results under ``out``.

    Args:
        ckpt: a lit_vision checkpoint (everything needed is read from it).
        input: an image file, a folder of images, or a CSV (see :mod:`lit_vision.inference.inputs`).
        out: output folder, replaced as one unit when the run succeeds (it may hold an earlier prediction,
            nothing else; see :mod:`lit_vision.inference.output_folder`). Never searched for inputs.
        batch_size / num_workers: prediction batches; workers decode files (None: 0 for small inputs).
        top_k: classes per image in the classification CSV.
        tta: average over the input and its flipped (``tta_flips``: ``h``, ``v``, ``hv``) and rescaled
            (``tta_scales``, segmentation) copies; dense outputs are mapped back before averaging.
        tiling: segmentation: predict each image at its own size by sliding windows of ``tile`` pixels
            (default: the training image_size) every ``stride`` pixels (default: half a tile), blended
            with a ``tile_window`` (gaussian, linear, flat); ``tile_batch_size`` tiles per forward pass.
            Composes with ``tta`` (applied to every tile).
        threshold: binary segmentation: foreground where p > threshold (default: the model's); multi-label:
            one threshold for every label instead of the per-label ones chosen on validation.
        alpha: the mask's share in segmentation overlays.
        grid: images in the classification grid picture (0: none).
        on_bad_image: ``error`` (default) or ``skip`` unreadable files.
        channels_last: run conv nets channels-last (``auto``: when the net has 2-D convolutions).
        trainer: Trainer arguments (``accelerator``, ``precision``, ``devices``...).
        trust_checkpoint: load a checkpoint that needs more than data to be rebuilt (only for trusted files).

    Returns the summary also written to ``out/predict.json``: task, counts, output files, seconds.
    """
    start = time.perf_counter()
    quiet_known_noise()
    model = load_model(ckpt, trust_checkpoint)
    out_dir = check_output_folder(out, input)
    if model.kind != "classification" and int(top_k) != 5:
        log.info("top_k applies to classification; ignored for a %s model.", model.kind)
    if is_tabular(model) and (tta or tiling):
        raise UserError(
            "tta=true and tiling=true work on images; this model predicts from table rows (leave them false)."
        )
    test_time = TestTimeOptions.from_mapping(
        {
            "tta": tta,
            "tta_flips": tta_flips,
            "tta_scales": tta_scales,
            "tiling": tiling,
            "tile": tile,
            "stride": stride,
            "tile_window": tile_window,
            "tile_batch_size": tile_batch_size,
        }
    )
    test_time.check_for(model.kind)
    options = {
        "batch_size": batch_size,
        "num_workers": num_workers,
        "on_bad_image": on_bad_image,
        "top_k": top_k,
        "grid": grid,
        "threshold": threshold,
        "alpha": alpha,
    }
    folder = OutputFolder(out_dir)
    try:
        summary = _predict_into(folder, model, input, test_time, channels_last, trainer, start, options)
        folder.commit()
    except BaseException:
        folder.discard()  # the earlier results in out stay as they were
        raise
    log.info("Predicted %d inputs in %.1fs; results in %s", summary["count"], summary["seconds"], out_dir)
    return summary


def _predict_into(
    folder: OutputFolder,
    model: LoadedModel,
    input: str | Path,
    test_time: TestTimeOptions,
    channels_last: bool | str,
    trainer: Mapping[str, Any] | None,
    start: float,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Predict into ``folder.staging`` (``options``: the arguments of :func:`image_parts`); return the summary
    (also written there as predict.json)."""
    staging = folder.staging
    if is_tabular(model):
        datamodule, writer = table_parts(model, input, staging, options["batch_size"])
    else:
        datamodule, writer = image_parts(
            model, input, staging, **options, exclude=(folder.target, staging), tiling=test_time.tiling
        )
    runner = build_trainer(trainer, staging, [writer])
    with warnings.catch_warnings():
        # Decoding in the main process is a deliberate choice for small inputs.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        predictor = Predictor(
            model.task,
            model.kind,
            channels_last=channels_last,
            test_time=test_time,
            image_size=model.data_info.get("image_size"),
        )
        runner.predict(predictor, datamodule=datamodule, return_predictions=False)
    seconds = time.perf_counter() - start
    summary = {
        "checkpoint": str(model.path),
        "task": model.kind,
        "input": str(input),
        "count": writer.written,
        "skipped": [path for path, _ in datamodule.skipped],
        **test_time.describe(),
        "precision": str(runner.precision),
        "accelerator": type(runner.accelerator).__name__,
        "outputs": {kind: str(folder.final_path(path)) for kind, path in writer.outputs().items()},
        "seconds": round(seconds, 3),
    }
    write_json(staging / SUMMARY_NAME, summary)
    return summary
