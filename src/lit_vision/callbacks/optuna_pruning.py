"""Optuna pruning from inside a Lightning fit: report the monitored validation value after every epoch to
the trial this job runs, and stop the fit when the study's pruner says the trial is hopeless.

The trial is found through :func:`register_trial`, which the sweeper
(:mod:`lit_vision.runs.optuna_search`) calls for every trial it launches in this process, keyed by the
job number that Hydra gives the job (the sweeper makes it the trial number). Outside such a sweep (a
single run, a grid sweep) the callback does nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import lightning as L
from lightning.pytorch.callbacks import Callback

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("lit_vision")

# trial number (= Hydra job number) -> the live trial, set by the one sweeper that runs in this process.
_TRIALS: dict[int, optuna.trial.Trial] = {}


def register_trial(trial: optuna.trial.Trial) -> None:
    """Make ``trial`` reachable to the job that the sweeper launches with job number ``trial.number``."""
    _TRIALS[trial.number] = trial


def forget_trial(number: int) -> None:
    """Drop a finished trial from the registry."""
    _TRIALS.pop(number, None)


def current_trial() -> optuna.trial.Trial | None:
    """The trial of the running Hydra job, when an Optuna sweeper in this process launched it."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    num = HydraConfig.get().job.get("num")
    return None if num is None else _TRIALS.get(int(num))


class OptunaPruning(Callback):
    """Report ``monitor`` after each validation to the job's Optuna trial; stop the fit if it is pruned.

    ``pruned_epoch`` holds the epoch after which the fit was stopped (None: not pruned). The step reported
    is the epoch, so pruners' ``n_warmup_steps`` / Hyperband's ``min_resource`` count epochs.
    """

    def __init__(self, monitor: str) -> None:
        super().__init__()
        self.monitor = monitor
        self.pruned_epoch: int | None = None
        self._trial: Any = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._trial = current_trial()
        self.pruned_epoch = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._trial is None or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            log.warning("Optuna pruning: no %s after validation; nothing reported this epoch.", self.monitor)
            return
        epoch = trainer.current_epoch
        self._trial.report(float(value), step=epoch)
        if self._trial.should_prune():
            self.pruned_epoch = epoch
            trainer.should_stop = True


def pruned_at_epoch(trainer: L.Trainer) -> int | None:
    """The epoch after which an :class:`OptunaPruning` callback stopped ``trainer``'s fit, else None."""
    for callback in trainer.callbacks:
        if isinstance(callback, OptunaPruning) and callback.pruned_epoch is not None:
            return callback.pruned_epoch
    return None
