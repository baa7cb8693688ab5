"""The run's hyperparameters in TensorBoard's HPARAMS tab, next to its final metrics.

Inside a Hydra run the HPARAMS table shows what the user chose: the option of each config group
(``model=mlp``, ``optim=sgd``), every key set on the command line (``optim.lr=0.01``, ``data.batch_size=32``)
and the seed, so the runs of a sweep read as the command lines that made them. Without Hydra (a Trainer
used directly) it falls back to the flattened values of the logged hyperparameters, without paths. The
plugin reads each metric column from the run's scalars (the last value of ``val/acc``, ``test/acc``...);
``<monitor>_best`` (``val/acc_best``) adds the best checkpoint's score at the end of fit.

At the end of fit a CUSTOM SCALARS layout puts each training curve and its validation twin on one chart
(``train/loss`` with ``val/loss``), on the global-step axis.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.tensorboard.summary import hparams

from lit_vision.callbacks.base import MonitorCallback, tensorboard_writer

DEFAULT_INCLUDE = ("seed", "task_name", "tags", "data", "model", "optim", "scheduler", "trainer")
DEFAULT_EXCLUDE = ("model.optimizer", "model.scheduler")
# Keys that differ between runs without being hyperparameters (folders, files).
PATH_LIKE = re.compile(r"(^|[._])(dir|dirpath|path|root|root_dir|data_dir|save_dir)$")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def tensorboard_value(value: Any) -> int | float | str:
    """A value the HPARAMS plugin can show: numbers and strings as they are, the rest as text
    (``true``/``false`` rather than 1/0, lists as JSON, an empty group as ``none``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return value
    if isinstance(value, Mapping):
        return json.dumps(dict(value), default=str) if value else "none"
    if isinstance(value, Sequence):
        return json.dumps(list(value), default=str)
    return str(value)


def select_hparams(
    record: Mapping[str, Any], include: Sequence[str], exclude: Sequence[str]
) -> dict[str, int | float | str]:
    """The flattened values of ``record`` under ``include`` prefixes, minus ``exclude``, paths and unset
    (null) values. A record with none of the ``include`` groups (a Trainer used without run.py) is kept
    whole.
    """

    def under(name: str, prefixes: Sequence[str]) -> bool:
        return any(name == p or name.startswith(p + ".") for p in prefixes)

    flat = flatten(record)
    chosen = {k: v for k, v in flat.items() if under(k, include)} or flat
    return {
        name: tensorboard_value(value)
        for name, value in sorted(chosen.items())
        if value is not None
        and not under(name, exclude)
        and not PATH_LIKE.search(name)
        and not name.endswith("_recursive_")
    }


# Config groups whose chosen option is shown (``model=mlp``); the rest (hydra/*, paths) say nothing about a run.
CHOICE_GROUPS = (
    "data",
    "model",
    "optim",
    "scheduler",
    "trainer",
    "callbacks",
    "logger",
    "experiment",
    "debug",
    "hparams_search",
)
# Command-line keys that describe how a run was launched rather than what it trains.
LAUNCH_KEYS = ("hydra", "ckpt_path", "paths", "resume_in_run_dir", "print_config")


def hydra_choices_and_overrides(record: Mapping[str, Any]) -> dict[str, int | float | str] | None:
    """``{group: option}`` of the current Hydra run plus its command-line keys (values from ``record``, the
    resolved config, when it has them) and the seed; None outside a Hydra run."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    chosen: dict[str, Any] = {}
    choices = hydra_cfg.runtime.choices
    for group in CHOICE_GROUPS:
        option = choices.get(group)
        if option is not None:
            chosen[group] = str(option)
    for override in hydra_cfg.overrides.task:
        text = str(override)
        if text.startswith("~"):
            continue
        key, _, raw = text.lstrip("+").partition("=")
        if key in CHOICE_GROUPS or key.split(".")[0] in LAUNCH_KEYS or PATH_LIKE.search(key):
            continue
        chosen[key] = _lookup(record, key, raw)
    if "seed" in record:
        chosen["seed"] = record["seed"]
    return {name: tensorboard_value(value) for name, value in chosen.items() if value is not None}


def _lookup(record: Mapping[str, Any], dotted: str, default: Any) -> Any:
    """``record["a"]["b"]`` for ``"a.b"`` (the resolved value of an override), else ``default``."""
    node: Any = record
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def best_tag(monitor: str) -> str:
    """The scalar of the best checkpoint's score: ``val/acc`` -> ``val/acc_best`` (beside its curve)."""
    return f"{monitor}_best"


def paired_curves(names: Sequence[str]) -> dict[str, list[str]]:
    """``{"loss": ["train/loss", "val/loss"], ...}`` for every metric logged under both train/ and val/."""
    train = {n.removeprefix("train/").removesuffix("_epoch") for n in names if n.startswith("train/")}
    val = {n.removeprefix("val/") for n in names if n.startswith("val/")}
    return {name: [f"train/{name}", f"val/{name}"] for name in sorted(train & val) if "/" not in name}


class HParamsSummary(MonitorCallback):
    """Writes the HPARAMS session (hyperparameters) when training or testing starts, its end when it ends,
    and at the end of fit ``<monitor>_best`` (the best checkpoint's score) and the train/val chart layout.

    Args:
        include: config groups (flattened-name prefixes) to show without Hydra.
        exclude: flattened-name prefixes to leave out without Hydra.
    """

    def __init__(
        self, include: Sequence[str] = DEFAULT_INCLUDE, exclude: Sequence[str] = DEFAULT_EXCLUDE
    ) -> None:
        super().__init__(every_n_epochs=1, max_overhead=None)
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self._started = False
        self._ended = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_session(trainer, pl_module)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_session(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = tensorboard_writer(trainer) if self.enabled(trainer) else None
        monitored = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint) and c.monitor]
        if writer is not None and monitored and monitored[0].best_model_score is not None:
            best = monitored[0]
            writer.add_scalar(best_tag(best.monitor), float(best.best_model_score), trainer.global_step)
        if writer is not None:
            pairs = paired_curves(list(trainer.callback_metrics))
            if pairs:
                charts = {
                    name: ["Multiline", [f"^{re.escape(t)}$" for t in tags]] for name, tags in pairs.items()
                }
                writer.add_custom_scalars({"train and val": charts})
        self._end_session(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end_session(trainer)

    def hparams_of(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """The Hydra run's choices and command-line keys; without Hydra, the flattened values the loggers
        recorded (run.py's config + the task's), else the task's own hparams."""
        record: dict[str, Any] = {}
        for logger in trainer.loggers:
            record.update(dict(getattr(logger, "hparams", None) or {}))
        chosen = hydra_choices_and_overrides(record)
        if chosen:
            return chosen
        if not record:
            record = dict(pl_module.hparams)
        return select_hparams(record, self.include, self.exclude)

    def _start_session(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._started or not self.enabled(trainer):
            return
        self._started = True
        writer = self.writer(trainer)
        if writer is None:
            return
        _, session_start, _ = hparams(self.hparams_of(trainer, pl_module), {})
        writer._get_file_writer().add_summary(session_start)

    def _end_session(self, trainer: L.Trainer) -> None:
        if not self._started or self._ended:
            return
        writer = tensorboard_writer(trainer)
        if writer is None:
            return
        self._ended = True
        _, _, session_end = hparams({}, {})
        writer._get_file_writer().add_summary(session_end)
        writer.flush()
