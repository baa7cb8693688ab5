"""The run's hyperparameters in TensorBoard's HPARAMS tab, next to its final metrics.

``run.py`` logs the whole resolved config with ``logger.log_hyperparams(cfg)`` (TensorBoard keeps it as
``hparams.yaml``; Lightning adds the task's own hyperparameters). This callback turns that same record into
the HPARAMS plugin's session summary: the flattened values that tell runs apart (data, model, optim,
scheduler, trainer, seed), without paths. The plugin reads each metric column from the run's scalars
(the last value of ``val/acc``, ``test/acc``...), so the table shows the final metrics of every run of a
sweep side by side; ``best/<monitor>`` adds the best checkpoint's score at the end of fit.
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


class HParamsSummary(MonitorCallback):
    """Writes the HPARAMS session (hyperparameters) when training or testing starts, its end when it ends,
    and ``best/<monitor>`` (the best checkpoint's score) at the end of fit.

    Args:
        include: config groups (flattened-name prefixes) to show.
        exclude: flattened-name prefixes to leave out.
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
            writer.add_scalar(f"best/{best.monitor}", float(best.best_model_score), trainer.global_step)
        self._end_session(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end_session(trainer)

    def hparams_of(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """What the loggers recorded (run.py's config + the task's), else the task's own hparams."""
        record: dict[str, Any] = {}
        for logger in trainer.loggers:
            record.update(dict(getattr(logger, "hparams", None) or {}))
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
