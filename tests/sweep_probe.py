"""A Lightning callback for sweep tests: records every training session of every job, and makes chosen
jobs fail or get killed in their first session only (so a rerun of the sweep can succeed)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig


class SweepProbe(L.Callback):
    """Append ``"<job> <start epoch>"`` to ``log_file`` when a job's training starts. In a job's first
    session, job ``fail_job`` raises and job ``kill_job`` gets SIGTERM at the end of epoch 0."""

    def __init__(self, log_file: str, fail_job: int = -1, kill_job: int = -1) -> None:
        self.log_file = Path(log_file)
        self.fail_job = fail_job
        self.kill_job = kill_job
        self.job = -1
        self.first_session = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.job = int(HydraConfig.get().job.num)
        earlier = self.log_file.read_text().split("\n") if self.log_file.exists() else []
        self.first_session = not any(line.split(" ")[0] == str(self.job) for line in earlier if line)
        with self.log_file.open("a") as f:
            f.write(f"{self.job} {trainer.current_epoch}\n")
        if self.first_session and self.job == self.fail_job:
            raise RuntimeError("the probe fails this job's first session")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.first_session and self.job == self.kill_job and trainer.current_epoch == 0:
            os.kill(os.getpid(), signal.SIGTERM)


def sessions(log_file: Path) -> list[tuple[int, int]]:
    """The ``(job, start epoch)`` of every training session the probe saw, in order."""
    lines = log_file.read_text().split("\n") if log_file.exists() else []
    return [(int(a), int(b)) for a, b in (line.split(" ") for line in lines if line)]
