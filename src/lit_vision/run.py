"""Train/test orchestration used by ``train.py``: instantiate from config, fit, test the best checkpoint,
write ``metrics.json`` and return the metric sweepers optimise."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf, open_dict

from lit_vision.config import print_config_tree, save_resolved_config
from lit_vision.utils.io import write_json
from lit_vision.utils.metrics import to_float_dict

log = logging.getLogger("lit_vision")

# Keys a DataModule may leave null in the config and discover itself (folder of classes, image size...).
DISCOVERABLE_DATA_KEYS = ("num_classes", "in_channels", "image_size")


def instantiate_dict(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a ``{name: {_target_: ...}}`` group; null entries are switched off."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node is not None and "_target_" in node]


def fill_discovered_data_keys(cfg: DictConfig, datamodule: L.LightningDataModule) -> None:
    """Copy what the DataModule discovered into ``cfg.data`` so ``${data.num_classes}`` etc. resolve."""
    missing = [k for k in DISCOVERABLE_DATA_KEYS if k in cfg.data and cfg.data[k] is None]
    if not missing:
        return
    if hasattr(datamodule, "discover"):
        datamodule.discover()
    with open_dict(cfg):
        for key in missing:
            value = getattr(datamodule, key, None)
            if value is None:
                raise ValueError(f"data.{key} is null and {type(datamodule).__name__} could not discover it")
            cfg.data[key] = value


def checkpoint_callback(trainer: L.Trainer) -> ModelCheckpoint | None:
    """The ModelCheckpoint that monitors a metric (the one whose best model is tested), if any."""
    callbacks = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
    monitored = [c for c in callbacks if c.monitor]
    return (monitored or callbacks or [None])[0]


def train(cfg: DictConfig) -> tuple[dict[str, Any], float | None]:
    """Run one experiment described by ``cfg``; return ``(metrics, value of cfg.optimized_metric)``."""
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    seed = L.seed_everything(cfg.seed, workers=True)
    with open_dict(cfg):
        cfg.seed = seed

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    fill_discovered_data_keys(cfg, datamodule)
    print_config_tree(cfg)
    save_resolved_config(cfg, output_dir / "config.yaml")

    task: L.LightningModule = instantiate(cfg.model)
    callbacks: list[Callback] = instantiate_dict(cfg.get("callbacks"))
    loggers: list[Logger] = instantiate_dict(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    metrics: dict[str, Any] = {"seed": seed, "output_dir": str(output_dir)}
    ckpt_path = cfg.get("ckpt_path")
    if cfg.get("train", True):
        start = time.perf_counter()
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics["fit_seconds"] = round(time.perf_counter() - start, 3)
        metrics.update(to_float_dict(trainer.callback_metrics))
        metrics.update(epochs=trainer.current_epoch, global_step=trainer.global_step)

    best = checkpoint_callback(trainer)
    best_path = best.best_model_path if best is not None and cfg.get("train", True) else ""
    if best is not None and best.best_model_score is not None:
        metrics["best_model_score"] = float(best.best_model_score)
    metrics["best_model_path"] = best_path or None

    if cfg.get("test", True):
        test_ckpt = best_path or (None if cfg.get("train", True) else ckpt_path)
        if cfg.get("train", True) and not best_path:
            log.warning("No best checkpoint was written; testing the weights at the end of training.")
        start = time.perf_counter()
        results = trainer.test(task, datamodule=datamodule, ckpt_path=test_ckpt, weights_only=False)
        metrics["test_seconds"] = round(time.perf_counter() - start, 3)
        for result in results:
            metrics.update(to_float_dict(result))

    write_json(output_dir / "metrics.json", metrics)
    log.info("Outputs: %s (metrics.json, config.yaml, checkpoints/, tensorboard/)", output_dir)
    return metrics, optimized_value(cfg, metrics)


def optimized_value(cfg: DictConfig, metrics: dict[str, Any]) -> float | None:
    """The value of ``cfg.optimized_metric``: the best checkpoint's score when it is the monitored metric."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name == cfg.model.get("monitor") and "best_model_score" in metrics:
        return metrics["best_model_score"]
    value = metrics.get(name)
    return None if value is None else float(value)
