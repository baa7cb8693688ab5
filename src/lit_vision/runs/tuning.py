"""``tune=lr_find`` / ``tune=batch_size``: Lightning's :class:`~lightning.pytorch.tuner.Tuner` before the fit.

The finder runs on a Trainer of its own (the run's trainer options, without the run's callbacks and loggers,
so it writes no checkpoint, figure or log of the real run), then puts the model back as it was (the Tuner
restores its weights) and re-seeds, so the fit starts as it would have without tuning. The run folder gets
``tune.json`` (the suggestion and whether it was applied) and, for the LR finder, ``lr_find.png`` (loss vs
learning rate, the suggestion marked). With ``tune.apply=true`` the suggestion replaces ``optim.lr`` /
``data.batch_size`` for the fit.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.tuner import Tuner
from omegaconf import DictConfig, OmegaConf

from lit_vision.errors import UserError
from lit_vision.inference.trust import safe_globals
from lit_vision.utils.io import write_json

log = logging.getLogger("lit_vision")

TUNE_MODES = ("lr_find", "batch_size")
# keys of conf/tune/*.yaml that are not arguments of the Tuner method
_OWN_KEYS = ("mode", "apply")
# Lightning's name of the search argument, spelt `search` in the config (`mode` names the finder there)
_SEARCH_ARG = "mode"


def tune_options(cfg: DictConfig) -> dict[str, Any] | None:
    """The ``tune`` group as a plain dict (None when no finder is asked for); UserError for a bad value."""
    node = cfg.get("tune")
    if node is None:
        return None
    options = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    if not isinstance(options, dict):
        raise UserError(f"tune={node!r} is not a finder: use tune=lr_find or tune=batch_size.")
    mode = options.get("mode")
    if mode not in TUNE_MODES:
        raise UserError(
            f"tune.mode={mode!r} is not one of {', '.join(TUNE_MODES)} (tune=lr_find, tune=batch_size)."
        )
    if not isinstance(options.get("apply", False), bool):
        raise UserError(f"tune.apply={options.get('apply')!r} must be true or false.")
    return options


def tune_before_fit(
    cfg: DictConfig,
    task: L.LightningModule,
    datamodule: L.LightningDataModule,
    output_dir: Path,
    resuming: bool,
) -> dict[str, Any] | None:
    """Run the finder chosen by ``cfg.tune`` (if any); write its results into ``output_dir``; return them."""
    options = tune_options(cfg)
    if options is None:
        return None
    if resuming:
        log.info("tune=%s is skipped: a resumed run keeps the settings it started with.", options["mode"])
        return None
    if options["mode"] == "lr_find":
        steps = int(options.get("num_training", 100))
    else:
        steps = int(options.get("steps_per_trial", 3)) * int(options.get("max_trials", 25))
    trainer = _tuning_trainer(cfg, output_dir, steps)
    if trainer.world_size > 1:
        raise UserError(
            f"tune={options['mode']} runs on one device, this run uses {trainer.world_size}: run the finder "
            "once with trainer.devices=1 (and trainer.num_nodes=1), then set the suggested value "
            "(optim.lr=... or data.batch_size=...) for the distributed run."
        )
    finder_args = {k: v for k, v in options.items() if k not in _OWN_KEYS}
    if "search" in finder_args:
        finder_args[_SEARCH_ARG] = finder_args.pop("search")
    if options["mode"] == "lr_find":
        result = _find_lr(trainer, task, datamodule, finder_args, bool(options.get("apply")), output_dir)
    else:
        result = _find_batch_size(trainer, task, datamodule, finder_args, bool(options.get("apply")))
    write_json(output_dir / "tune.json", result)
    # the finder consumed random numbers: the fit starts from the same state as an untuned run
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    return result


def _tuning_trainer(cfg: DictConfig, root: Path, max_steps: int) -> L.Trainer:
    """A Trainer with the run's options and none of its callbacks or loggers, for ``max_steps`` optimizer
    steps whatever the run's epoch limits. Lightning's finders keep a temporary checkpoint of the initial
    weights in ``root`` (a hidden ``.lr_find_*.ckpt`` / ``.scale_batch_size_*.ckpt``) and remove it."""
    return instantiate(
        cfg.trainer,
        callbacks=[],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        # the finders count their own steps (tune.num_training, steps_per_trial): the run's epoch limit
        # (a short debug run's 1 epoch of 3 batches) must not cut them short
        max_epochs=-1,
        min_epochs=None,
        max_steps=max(1, max_steps),
    )


def _find_lr(
    trainer: L.Trainer,
    task: L.LightningModule,
    datamodule: L.LightningDataModule,
    finder_args: dict[str, Any],
    apply: bool,
    output_dir: Path,
) -> dict[str, Any]:
    configured = _configured_lr(task)
    with safe_globals():  # the finder reloads its own checkpoint of the initial weights
        finder = Tuner(trainer).lr_find(task, datamodule=datamodule, update_attr=False, **finder_args)
    if finder is None:  # Lightning skips the finder under fast_dev_run
        raise UserError(
            "tune=lr_find does not run with debug=fast_dev_run (or trainer.fast_dev_run): drop one."
        )
    suggestion = finder.suggestion()
    lrs = [float(v) for v in finder.results.get("lr", [])]
    losses = [float(v) for v in finder.results.get("loss", [])]
    if suggestion is None or not math.isfinite(suggestion):
        suggestion = None
        message = (
            f"tune=lr_find found no suggestion ({len(lrs)} steps recorded; it needs more than 12 with a finite "
            "loss): raise tune.num_training or lower tune.max_lr."
        )
        if apply:
            raise UserError(message + " optim.lr was not changed; set tune.apply=false to train anyway.")
        log.warning("%s", message)
    fig = finder.plot(suggest=suggestion is not None, show=False)
    fig.axes[0].set_title(
        f"LR finder: suggestion {suggestion:.3g}" if suggestion else "LR finder: no suggestion"
    )
    fig.savefig(output_dir / "lr_find.png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    applied = bool(apply and suggestion is not None)
    if applied:
        _set_lr(task, float(suggestion))
    log.info(
        "LR finder: suggested lr %s (configured %s)%s; plot: %s",
        f"{suggestion:.3g}" if suggestion else "none",
        configured,
        ", applied" if applied else " (tune.apply=true uses it)",
        output_dir / "lr_find.png",
    )
    return {
        "mode": "lr_find",
        "suggestion": suggestion,
        "configured": configured,
        "applied": applied,
        "plot": "lr_find.png",
        "lr": lrs,
        "loss": losses,
    }


def _configured_lr(task: L.LightningModule) -> float | None:
    optimizer = task.hparams.get("optimizer") or {}
    lr = optimizer.get("lr") if isinstance(optimizer, dict) else None
    return None if lr is None else float(lr)


def _set_lr(task: L.LightningModule, lr: float) -> None:
    """The base lr of the task's optimizer config (lr multipliers still apply on top of it)."""
    optimizer = task.hparams.get("optimizer")
    if not isinstance(optimizer, dict):
        raise UserError("tune.apply=true needs an optim group with an lr (the task has no optimizer config).")
    optimizer["lr"] = lr


def _find_batch_size(
    trainer: L.Trainer,
    task: L.LightningModule,
    datamodule: L.LightningDataModule,
    finder_args: dict[str, Any],
    apply: bool,
) -> dict[str, Any]:
    if not hasattr(datamodule, "batch_size"):
        raise UserError(
            f"tune=batch_size needs a DataModule with a batch_size; {type(datamodule).__name__} has none."
        )
    configured = int(datamodule.batch_size)
    if finder_args.get("init_val") is None:
        finder_args["init_val"] = configured  # null: start from data.batch_size
    with safe_globals():
        found = Tuner(trainer).scale_batch_size(task, datamodule=datamodule, **finder_args)
    suggestion = None if found is None else int(found)
    applied = bool(apply and suggestion is not None)
    datamodule.batch_size = suggestion if applied else configured
    log.info(
        "Batch-size finder: largest batch size that fits %s (configured %d)%s",
        suggestion,
        configured,
        ", applied" if applied else " (tune.apply=true uses it)",
    )
    return {"mode": "batch_size", "suggestion": suggestion, "configured": configured, "applied": applied}
