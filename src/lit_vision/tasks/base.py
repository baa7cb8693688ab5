"""The shared base of every task: builds the net, loss, optimizer and scheduler from config dicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from lit_vision.optim import build_optimizer, build_scheduler


def to_plain(value: Any) -> Any:
    """OmegaConf containers -> plain dicts/lists (resolved), so checkpoints hold only builtin types."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


class BaseTask(L.LightningModule):
    """Builds ``net`` (an nn.Module config) and owns optimisation; subclasses add loss, metrics and steps.

    Every constructor argument is a plain value or config dict and is saved in the checkpoint, so
    ``Task.load_from_checkpoint(path)`` rebuilds the model with no config file next to it.
    """

    def __init__(
        self,
        net: Mapping[str, Any],
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        loss: Mapping[str, Any] | None = None,
        monitor: str = "val/loss",
        monitor_mode: str = "min",
        lr_multipliers: Mapping[str, float] | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters({k: to_plain(v) for k, v in self._init_arguments(locals()).items()})
        self.net: nn.Module = instantiate(self.hparams.net)
        self.loss_fn: nn.Module | None = instantiate(self.hparams.loss) if self.hparams.loss else None
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        # What inference needs to prepare inputs (class names, normalisation...), stored in checkpoints.
        self.data_info: dict[str, Any] = {}

    @staticmethod
    def _init_arguments(frame_locals: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in frame_locals.items() if k not in ("self", "__class__")}

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    # ------------------------------------------------------------------ lifecycle
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None and hasattr(datamodule, "data_info"):
            self.data_info = dict(datamodule.data_info())
        if self.hparams.compile and not getattr(self, "_compiled", False):
            # In-place compile keeps the state_dict keys, so checkpoints load with or without it.
            self.net.compile()
            self._compiled = True

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["data_info"] = self.data_info

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.data_info = dict(checkpoint.get("data_info") or {})

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        optimizer = build_optimizer(
            self.hparams.optimizer or {"_target_": "torch.optim.Adam"}, self, self.hparams.lr_multipliers
        )
        total_steps = None
        if self._trainer is not None:
            total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = build_scheduler(self.hparams.scheduler, optimizer, self.hparams.monitor, total_steps)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
