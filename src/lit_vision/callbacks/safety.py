"""Run-safety callbacks that ``lit_vision.runs.run`` adds to every training run.

- :class:`InterruptCheckpoint`: Ctrl-C or SIGTERM writes ``checkpoints/last.ckpt`` with the full loop state,
  so the run resumes exactly. Lightning turns SIGTERM into an exception at the next batch boundary; Ctrl-C
  is routed through the same path (a second Ctrl-C stops at once, without saving).
- :class:`FiniteLossGuard`: a NaN/inf training loss stops the run before that update is applied, naming the
  step, so neither the weights nor any checkpoint are ever replaced by a diverged model.
- :class:`ExactResume`: stores the RNG states in every checkpoint and restores them, with the data-loader
  position, when training resumes, so a run resumed mid-epoch sees the same batches and random draws.
"""

from __future__ import annotations

import logging
import math
import random
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lit_vision.errors import UserError

log = logging.getLogger("lit_vision")


class NonFiniteLossError(UserError):
    """The training loss became NaN or infinite."""


class InterruptCheckpoint(Callback):
    """On Ctrl-C or SIGTERM during ``fit``, save ``<dirpath>/<filename>.ckpt`` (default ``last.ckpt``).

    Lightning's ``OnExceptionCheckpoint`` saves on *every* exception and, when present, makes ``fit()`` without
    ``ckpt_path`` silently resume from the newest "last" checkpoint in the folder; this callback saves only on
    an interruption (a bug or a non-finite loss must not replace the last good checkpoint) and changes
    nothing else. ``reason`` says what happened ("SIGINT" or "SIGTERM"), ``ckpt_path`` where the state went.

    Python turns Ctrl-C into a ``KeyboardInterrupt`` wherever the main thread is, often halfway through a
    batch (started but not completed: a checkpoint of that state resumes one step short). So while a
    one-process Trainer runs, the first SIGINT is handed to Lightning's SIGTERM handler instead: the run
    stops at the next batch boundary exactly as on SIGTERM, and the state saved is a consistent one. A
    second SIGINT raises ``KeyboardInterrupt`` at once and nothing is saved (``saved`` stays false, the
    checkpoints written earlier are kept). Under DDP Ctrl-C keeps Lightning's immediate stop (see
    ``_install_sigint_handler``).
    """

    def __init__(self, dirpath: str | Path, filename: str = "last") -> None:
        super().__init__()
        self.dirpath = Path(dirpath)
        self.filename = filename
        self.reason: str | None = None
        self.saved = False
        self.forced = False  # a second Ctrl-C stopped the run at once, without saving
        self._loop_started = False

    @property
    def ckpt_path(self) -> Path:
        return self.dirpath / f"{self.filename}.ckpt"

    # Lightning installs its SIGTERM handler after the setup hooks and puts the handlers it found back at its
    # teardown (also after an exception): installed from the first hook of each stage, ours is undone with it.
    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install_sigint_handler(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install_sigint_handler(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install_sigint_handler(trainer)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install_sigint_handler(trainer)

    def _install_sigint_handler(self, trainer: L.Trainer) -> None:
        self._loop_started = True  # the checkpoint (if any) is restored: the state is worth saving
        if threading.current_thread() is not threading.main_thread():
            return
        if trainer.world_size > 1:
            # Lightning 2.6's SIGTERM stop under DDP can leave the ranks' collectives out of step (it broadcasts
            # from inside the signal handler) and hang; Ctrl-C keeps Lightning's immediate stop there.
            return
        current = signal.getsignal(signal.SIGINT)
        if current is signal.SIG_IGN or getattr(current, "__self__", None) is self:
            return  # Ctrl-C ignored (a background job), or already ours
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        """First Ctrl-C: stop like SIGTERM at the next batch boundary; second: stop now."""
        graceful = signal.getsignal(signal.SIGTERM)
        if self.reason == "SIGINT" or not callable(graceful):
            self.forced = True
            raise KeyboardInterrupt
        self.reason = "SIGINT"
        log.warning(
            "Ctrl-C: stopping after the current batch and saving the state (press Ctrl-C again to stop at "
            "once, without saving)."
        )
        graceful(signal.SIGTERM, frame)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.reason = "SIGINT"
        elif isinstance(exception, SIGTERMException):
            self.reason = self.reason or "SIGTERM"  # "SIGINT" when Ctrl-C was routed here
        else:
            return
        # Before the loop starts, a resumed run's weights may not be restored yet: saving then could replace a
        # good last.ckpt with the fresh model.
        if trainer.state.fn == TrainerFn.FITTING and self._loop_started and not self.forced:
            trainer.save_checkpoint(self.ckpt_path, weights_only=False)
            self.saved = True


class FiniteLossGuard(Callback):
    """Raise :class:`NonFiniteLossError` before the backward pass of a NaN/inf loss (all ranks agree).

    Reading the loss on the host is free on a CPU but stalls a GPU's queue once per step. So on a GPU (with
    ``check_every_n_steps`` null) the flag stays on the device, recording the first non-finite step, and is
    read every ``trainer.log_every_n_steps`` steps and before every checkpoint: the run then stops within
    that many steps, names the step where the loss went non-finite, and no checkpoint is written after it.
    ``check_every_n_steps=1`` checks every step on any device.
    """

    def __init__(self, check_every_n_steps: int | None = None) -> None:
        self.check_every_n_steps = check_every_n_steps
        self._first_bad: torch.Tensor | None = None  # on the device: first non-finite global step, or -1

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        every = self.check_every_n_steps or (1 if loss.device.type == "cpu" else trainer.log_every_n_steps)
        if int(every or 1) > 1:
            self._record(trainer, loss.detach())
            if (trainer.global_step + 1) % int(every) == 0:
                self._check_recorded(trainer)
            return
        bad = not bool(torch.isfinite(loss.detach()).all())
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            return
        value = loss.detach().float().cpu().item() if loss.numel() == 1 else float("nan")
        batch = trainer.fit_loop.epoch_loop.batch_progress.current.ready
        last = _last_checkpoint(trainer)
        parts = [
            f"The training loss became {_describe(value)} at epoch {trainer.current_epoch}, global step "
            f"{trainer.global_step} (batch {batch} of the epoch); training stopped before applying that update.",
            f"The last checkpoint ({last}) was written before it and is kept." if last else "",
            "Usual fixes: a lower learning rate (optim.lr), gradient clipping (trainer.gradient_clip_val=1.0), "
            "trainer.precision=32, or checking the inputs for NaN/inf.",
        ]
        raise NonFiniteLossError(" ".join(p for p in parts if p))

    def _record(self, trainer: L.Trainer, loss: torch.Tensor) -> None:
        """Remember the first non-finite step on the device (no host sync)."""
        if self._first_bad is None or self._first_bad.device != loss.device:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
        step = torch.full((), trainer.global_step, dtype=torch.long, device=loss.device)
        bad = ~torch.isfinite(loss).all()
        self._first_bad = torch.where(bad & (self._first_bad < 0), step, self._first_bad)

    def _check_recorded(self, trainer: L.Trainer) -> None:
        """Read the recorded flag (one host sync); raise if a step went non-finite."""
        if self._first_bad is None:
            return
        first = int(self._first_bad)
        bad = first >= 0
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            return
        last = _last_checkpoint(trainer)
        where = f"global step {first}" if first >= 0 else "a step on another process"
        parts = [
            f"The training loss became NaN or infinite at {where} (epoch {trainer.current_epoch}; on this device "
            f"the loss is checked every few steps, found at global step {trainer.global_step}); training stopped.",
            f"The last checkpoint ({last}) was written before it and is kept." if last else "",
            "Usual fixes: a lower learning rate (optim.lr), gradient clipping (trainer.gradient_clip_val=1.0), "
            "trainer.precision=32, or checking the inputs for NaN/inf.",
        ]
        raise NonFiniteLossError(" ".join(p for p in parts if p))

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._check_recorded(trainer)  # never write a checkpoint after an unchecked non-finite step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check_recorded(trainer)


class ExactResume(Callback):
    """Completes Lightning's restore so a run resumed mid-epoch continues exactly where it stopped.

    - Saves the Python/NumPy/torch RNG states with every checkpoint and restores them when training resumes
      (dropout and augmentation draws continue as in the uninterrupted run).
    - Hands the saved data-loader positions to the loaders: Lightning skips that when the train loader was
      already built before the restore (``estimated_stepping_batches`` in ``configure_optimizers``).
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        # Plain lists and tensors only, so the checkpoint still loads with torch.load(weights_only=True).
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        version, python_state, gauss_next = random.getstate()
        state: dict[str, Any] = {
            "python": [version, list(python_state), gauss_next],
            "numpy": [
                str(kind),
                torch.from_numpy(keys.astype(np.int64)),
                int(pos),
                int(has_gauss),
                float(gauss),
            ],
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = dict(state_dict)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Both applied as late as possible: the loaders are built and no batch has been drawn yet.
        fit_loop = trainer.fit_loop
        if (
            getattr(fit_loop, "_combined_loader_states_to_load", None)
            and fit_loop._combined_loader is not None
        ):
            fit_loop._load_combined_loader_states()
        state, self._pending = self._pending, None
        if not state:
            return
        version, python_state, gauss_next = state["python"]
        random.setstate((version, tuple(python_state), gauss_next))
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])


def _describe(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "+inf" if value > 0 else "-inf"


def _last_checkpoint(trainer: L.Trainer) -> str | None:
    """The newest checkpoint file written: a ``last`` one when a callback keeps it, else the best."""
    paths = [
        str(getattr(callback, name, "") or "")
        for name in ("last_model_path", "best_model_path")
        for callback in trainer.checkpoint_callbacks
    ]
    written = [path for path in paths if path]
    newest = [path for path in written if Path(path).stem == "last"]
    return (newest or written or [None])[0]
