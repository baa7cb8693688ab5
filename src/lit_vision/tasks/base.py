"""The shared base of every task: builds the net, loss, optimizer and scheduler from config dicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from lit_vision.nets.init import prepare_net
from lit_vision.nets.weights import no_pretrained_loading
from lit_vision.optim.optimizers import build_optimizer, build_scheduler
from lit_vision.utils.hardware import wants_channels_last


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
        channels_last: bool | str = False,
        compile: bool = False,
        init: str | Mapping[str, Any] | None = None,
        pretrained_path: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters({k: to_plain(v) for k, v in self._init_arguments(locals()).items()})
        self.net: nn.Module = instantiate(self.hparams.net)
        # init scheme, then partial loading by name and shape (skipped when rebuilding from a checkpoint)
        self.pretrained_report = prepare_net(self.net, self.hparams.init, self.hparams.pretrained_path)
        self.loss_fn: nn.Module | None = instantiate(self.hparams.loss) if self.hparams.loss else None
        # "auto" is decided in setup(), once the device and precision are known (lit_vision.utils.hardware).
        if isinstance(channels_last, str) and channels_last != "auto":
            raise ValueError(f"channels_last must be true, false or auto, got {channels_last!r}")
        self.channels_last = False if isinstance(channels_last, str) else bool(channels_last)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        # What inference needs to prepare inputs (class names, normalisation...), stored in checkpoints.
        self.data_info: dict[str, Any] = {}

    @classmethod
    def load_from_checkpoint(cls, *args: Any, **kwargs: Any):
        """Lightning's ``load_from_checkpoint``, without re-reading pretrained weights or files: the
        checkpoint's state dict replaces them anyway, and they may be offline or gone."""
        with no_pretrained_loading():
            return super().load_from_checkpoint(*args, **kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets _current_fx_name around every hook call (about 50 times per training step);
        # it is a plain attribute, so nn.Module.__setattr__'s parameter/buffer/module checks are skipped.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    @staticmethod
    def _init_arguments(frame_locals: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in frame_locals.items() if k not in ("self", "__class__")}

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if x.is_floating_point() and x.dtype != self.dtype and self.dtype != torch.float32:
            # trainer.precision=bf16-true/16-true/64-true: the weights are not float32, the batch (normalised
            # on the device in float32) must follow; mixed precision keeps float32 weights and autocasts.
            x = x.to(self.dtype)
        return self.net(x)

    # ------------------------------------------------------------------ lifecycle
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None and hasattr(datamodule, "data_info"):
            self.data_info = dict(datamodule.data_info())
        if self.hparams.get("channels_last") == "auto" and self._trainer is not None:
            device, precision = self.trainer.strategy.root_device, self.trainer.precision
            if not self.channels_last and wants_channels_last("auto", self.net, device, precision):
                self.channels_last = True
                self.net = self.net.to(memory_format=torch.channels_last)
        if self.hparams.compile and not getattr(self, "_compiled", False):
            # In-place compile keeps the state_dict keys, so checkpoints load with or without it.
            self.net.compile()
            self._compiled = True

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["data_info"] = self.data_info
        # Which task class to rebuild (evaluate/predict from the checkpoint alone).
        checkpoint["task_class"] = f"{type(self).__module__}.{type(self).__qualname__}"

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
