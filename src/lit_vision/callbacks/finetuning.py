"""Feature extraction, then fine-tuning: a frozen backbone for some epochs, then unfrozen at a lower lr.

Built on Lightning's ``BaseFinetuning``. The backbone is everything in the task's ``net`` except its
classifier head(s) (``net.head_name`` and ``net.aux_head_names``, see ``lit_vision.nets.heads``). While
frozen, its parameters get no gradients and are left out of the optimizer, and its BatchNorm layers run
in eval mode (running statistics neither used from the batch nor updated). At ``unfreeze_at_epoch`` the
backbone becomes trainable again and its parameters join the optimizer as a new param group named
``backbone`` with their own learning rate; every configured lr scheduler is told about the new group.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import lightning as L
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim import Optimizer

from lit_vision.nets.heads import expand_head_alias, is_under
from lit_vision.optim.schedulers import add_group_to_scheduler, scheduled_group_count

log = logging.getLogger("lit_vision")

FREEZE_MODES = ("all", "none", "until_epoch")


class BackboneFreeze(BaseFinetuning):
    """Freeze the backbone (all of ``net`` but its head) and unfreeze it later with its own lr.

    Args:
        freeze: ``until_epoch`` (frozen for epochs ``0 .. unfreeze_at_epoch - 1``, then trained),
            ``all`` (frozen for the whole run: pure feature extraction) or ``none`` (never frozen; the
            callback does nothing and the optimizer's lr and ``lr_multipliers`` apply throughout).
        unfreeze_at_epoch: the first epoch in which the backbone trains (``until_epoch`` only).
        backbone_lr: the backbone group's learning rate once unfrozen; null: ``backbone_lr_factor`` times
            the optimizer's base ``lr``. When an lr schedule has already scaled the other groups, the
            backbone starts at the same scale.
        backbone_lr_factor: see ``backbone_lr`` (0.1: ten times lower than the base lr).
        train_bn: train the backbone's BatchNorm layers even while the rest is frozen (default false:
            frozen BatchNorm in eval mode).
        trainable: module prefixes of the task that stay trainable; ``net.head`` (the default) means
            the net's classifier head(s), whatever they are called.
    """

    def __init__(
        self,
        freeze: str = "until_epoch",
        unfreeze_at_epoch: int = 5,
        backbone_lr: float | None = None,
        backbone_lr_factor: float = 0.1,
        train_bn: bool = False,
        trainable: Sequence[str] = ("net.head",),
    ) -> None:
        super().__init__()
        if freeze not in FREEZE_MODES:
            raise ValueError(f"freeze must be one of {FREEZE_MODES}, got {freeze!r}")
        if int(unfreeze_at_epoch) < 0:
            raise ValueError(f"unfreeze_at_epoch must be >= 0, got {unfreeze_at_epoch}")
        self.freeze_mode = freeze
        self.unfreeze_at_epoch = int(unfreeze_at_epoch)
        self.backbone_lr = None if backbone_lr is None else float(backbone_lr)
        self.backbone_lr_factor = float(backbone_lr_factor)
        self.train_bn = bool(train_bn)
        self.trainable = list(trainable)

    # ----------------------------------------------------------------- which modules
    def trainable_prefixes(self, pl_module: L.LightningModule) -> list[str]:
        """Task-level prefixes of the modules that are never frozen (the head(s) by default)."""
        net = getattr(pl_module, "net", None)
        if not isinstance(net, nn.Module):
            raise ValueError(
                f"{type(pl_module).__name__} has no `net` module to split into backbone and head"
            )
        return expand_head_alias(self.trainable, net, net_prefix="net.")

    def backbone_modules(self, pl_module: L.LightningModule) -> list[nn.Module]:
        """Leaf modules (and parents holding parameters) of ``net`` outside the trainable prefixes."""
        keep = self.trainable_prefixes(pl_module)
        modules = []
        for name, module in pl_module.named_modules():
            if not name.startswith("net.") or is_under(name, keep):
                continue
            has_own = any(True for _ in module.parameters(recurse=False))
            if not list(module.children()) or has_own:
                modules.append(module)
        return modules

    def is_frozen_at(self, epoch: int) -> bool:
        """Whether the backbone is frozen during ``epoch``."""
        if self.freeze_mode == "none":
            return False
        return self.freeze_mode == "all" or epoch < self.unfreeze_at_epoch

    # ----------------------------------------------------------------- BaseFinetuning hooks
    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        if self.freeze_mode == "none":
            return
        self.freeze(self.backbone_modules(pl_module), train_bn=self.train_bn)

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: Optimizer) -> None:
        if self.is_frozen_at(epoch) or self.freeze_mode == "none":
            return
        modules = self.backbone_modules(pl_module)
        in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
        params = [p for m in modules for p in m.parameters(recurse=False)]
        if any(id(p) in in_optimizer for p in params):
            # Resumed after the unfreeze: the param group was restored, the flags were not.
            self.make_trainable(modules)
            self._set_bn_mode(modules, training=True)
            return
        base_lr = float(optimizer.defaults.get("lr", optimizer.param_groups[0]["lr"]))
        initial_lr = self.backbone_lr if self.backbone_lr is not None else base_lr * self.backbone_lr_factor
        reference = optimizer.param_groups[0]
        scale = float(reference["lr"]) / float(reference.get("initial_lr", reference["lr"]))
        self.unfreeze_and_add_param_group(modules, optimizer, lr=initial_lr * scale, train_bn=True)
        group = optimizer.param_groups[-1]
        group["name"] = "backbone"
        group["initial_lr"] = initial_lr
        self._set_bn_mode(modules, training=True)
        for config in pl_module.trainer.lr_scheduler_configs:
            if config.scheduler.optimizer is optimizer:
                add_group_to_scheduler(config.scheduler, optimizer, group)
        log.info(
            "Epoch %d: backbone unfrozen, lr %.3g (%d tensors)", epoch, group["lr"], len(group["params"])
        )

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)  # restores param groups added before a checkpoint
        for config in trainer.lr_scheduler_configs:
            optimizer = config.scheduler.optimizer
            known = scheduled_group_count(config.scheduler)
            for group in optimizer.param_groups[known:] if known is not None else []:
                add_group_to_scheduler(config.scheduler, optimizer, group)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if self.is_frozen_at(trainer.current_epoch) and not self.train_bn:
            # Set here rather than at setup: Lightning warns about modules in eval mode at fit start.
            self._set_bn_mode(self.backbone_modules(pl_module), training=False)

    @staticmethod
    def _set_bn_mode(modules: Sequence[nn.Module], training: bool) -> None:
        for module in modules:
            if isinstance(module, _BatchNorm):
                module.train(training)
