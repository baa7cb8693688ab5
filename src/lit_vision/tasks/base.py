"""The template every task follows (after torchgeo's ``BaseTask``).

:class:`BaseTask` owns the constructor arguments all tasks share, builds the net, the loss
(:meth:`~BaseTask.configure_losses`) and the metrics (:meth:`~BaseTask.configure_metrics`), runs the
train/val/test steps and logs every stage's loss and metrics through one path (:meth:`~BaseTask.log_epoch`).
A task adds its own arguments, :meth:`~BaseTask.model_step` (loss and outputs of one batch) and, where
needed, :meth:`~BaseTask.epoch_values` (turning computed metrics into the logged scalars).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn
from torchmetrics import MetricCollection

from lit_vision.data.contract import DataInfo, DescribesData
from lit_vision.nets.init import prepare_net
from lit_vision.nets.weights import local_file_replaces_downloads, no_pretrained_loading
from lit_vision.optim.optimizers import build_optimizer, build_scheduler
from lit_vision.tasks.epoch_metrics import BufferedMetrics, RunningMean
from lit_vision.utils.callback_hooks import skip_noop_batch_hooks
from lit_vision.utils.hardware import wants_channels_last

STAGES = ("train", "val", "test")


def to_plain(value: Any) -> Any:
    """OmegaConf containers -> plain dicts/lists (resolved), so checkpoints hold only builtin types."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


# Checkpoint key of the running training-epoch state saved on an interruption (see on_save_checkpoint).
RUNNING_TRAIN_EPOCH = "running_train_epoch"


class BaseTask(L.LightningModule):
    """Builds ``net`` (an nn.Module config), its loss and metrics, and owns optimisation and logging.

    Every constructor argument is a plain value or config dict and is saved in the checkpoint, so
    ``Task.load_from_checkpoint(path)`` rebuilds the model with no config file next to it. Subclasses pass
    their own (normalised) arguments on as keyword arguments: they are saved with the shared ones, and a
    name that no ``__init__`` of the task declares is refused.

    Args:
        net: the nn.Module config (``_target_`` and its arguments).
        optimizer, scheduler: optimizer and learning-rate schedule configs (see :mod:`lit_vision.optim`).
        loss: the loss config; how it is read is up to :meth:`configure_losses`.
        monitor, monitor_mode: the metric that checkpointing (and ReduceLROnPlateau) follows.
        lr_multipliers: learning-rate factors per module prefix (``head`` names the classifier head).
        channels_last: true, false or ``auto`` (decided once the device and precision are known).
        compile: ``torch.compile`` the net in place at setup.
        init, pretrained_path: an init scheme and a weights file for the net (see :mod:`lit_vision.nets.init`).
    """

    #: metrics (names without the stage prefix) shown in the progress bar for val and test
    progress_bar_metrics: tuple[str, ...] = ()

    def __init__(
        self,
        net: Mapping[str, Any],
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        loss: Any = None,
        monitor: str = "val/loss",
        monitor_mode: str = "min",
        lr_multipliers: Mapping[str, float] | None = None,
        channels_last: bool | str = False,
        compile: bool = False,
        init: str | Mapping[str, Any] | None = None,
        pretrained_path: str | None = None,
        **task_args: Any,
    ) -> None:
        super().__init__()
        self._check_task_args(task_args)
        shared = {
            "net": net,
            "optimizer": optimizer,
            "scheduler": scheduler,
            "loss": loss,
            "monitor": monitor,
            "monitor_mode": monitor_mode,
            "lr_multipliers": lr_multipliers,
            "channels_last": channels_last,
            "compile": compile,
            "init": init,
            "pretrained_path": pretrained_path,
        }
        self.save_hyperparameters({k: to_plain(v) for k, v in {**shared, **task_args}.items()})
        with local_file_replaces_downloads(self.hparams.pretrained_path):  # no download a file replaces
            self.net: nn.Module = instantiate(self.hparams.net)
        # init scheme, then partial loading by name and shape (skipped when rebuilding from a checkpoint)
        self.pretrained_report = prepare_net(self.net, self.hparams.init, self.hparams.pretrained_path)
        self.loss_fn: nn.Module | None = self.configure_losses()
        # "auto" is decided in setup(), once the device and precision are known (lit_vision.utils.hardware).
        if isinstance(channels_last, str) and channels_last != "auto":
            raise ValueError(f"channels_last must be true, false or auto, got {channels_last!r}")
        self.channels_last = False if isinstance(channels_last, str) else bool(channels_last)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        metrics = self.configure_metrics()
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        # Tasks with a `metric_chunk` argument update their metrics in chunks of that many samples.
        chunk = int(self.hparams.get("metric_chunk") or 1)
        self.metric_buffers = {
            stage: BufferedMetrics(getattr(self, f"{stage}_metrics"), chunk) for stage in STAGES
        }
        self.loss_means = {stage: RunningMean() for stage in STAGES}
        # What inference needs to prepare inputs (class names, normalisation...), stored in checkpoints.
        self._data_info: DataInfo | None = None

    def _check_task_args(self, task_args: Mapping[str, Any]) -> None:
        """TypeError for a keyword that no ``__init__`` between the task class and BaseTask declares."""
        declared: set[str] = set()
        for klass in type(self).__mro__:
            if klass is BaseTask:
                break
            if "__init__" in vars(klass):
                for name, param in inspect.signature(klass.__init__).parameters.items():
                    if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                        declared.add(name)
        unknown = sorted(set(task_args) - declared)
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got unexpected keyword argument(s): {', '.join(unknown)}"
            )

    # ------------------------------------------------------------------ template hooks
    def configure_losses(self) -> nn.Module | None:
        """The loss module (``self.loss_fn``); default: ``hparams.loss`` instantiated, or None."""
        return instantiate(self.hparams.loss) if self.hparams.loss else None

    def configure_metrics(self) -> MetricCollection:
        """The metrics of one stage, without prefix; cloned as ``train/``, ``val/`` and ``test/``."""
        return MetricCollection({})

    def model_step(self, batch: Any, stage: str) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
        """``(outputs, metric inputs)`` of one batch: ``outputs`` holds ``"loss"`` and what the monitoring
        callbacks read (see :mod:`lit_vision.callbacks.outputs`); the metrics are updated with
        ``metric inputs`` (predictions, target), whose target's first axis is the batch."""
        raise NotImplementedError

    def epoch_values(self, stage: str, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The scalars to log for ``stage`` from the computed metrics (names without prefix)."""
        return values

    @property
    def class_names(self) -> Sequence[str]:
        """Class names from the data, else ``0..num_classes-1``."""
        names = self.data_info.class_names if self.data_info is not None else None
        return list(names or [str(i) for i in range(int(self.hparams.get("num_classes") or 0))])

    @property
    def data_info(self) -> DataInfo | None:
        """What the DataModule said about the data (None when the task was trained without one)."""
        return self._data_info

    @data_info.setter
    def data_info(self, value: DataInfo | Mapping[str, Any] | None) -> None:
        # a plain dict (a checkpoint's, or written by hand) is read as DataInfo.from_dict reads it
        self._data_info = DataInfo.from_dict(value)

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

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if x.is_floating_point() and x.dtype != self.dtype and self.dtype != torch.float32:
            # trainer.precision=bf16-true/16-true/64-true: the weights are not float32, the batch (normalised
            # on the device in float32) must follow; mixed precision keeps float32 weights and autocasts.
            x = x.to(self.dtype)
        return self.net(x)

    # ------------------------------------------------------------------ steps: one path for every stage
    def _shared_step(self, batch: Any, stage: str) -> dict[str, torch.Tensor]:
        outputs, (predictions, target) = self.model_step(batch, stage)
        self.metric_buffers[stage].update(predictions, target)
        self.loss_means[stage].update(outputs["loss"], target.shape[0])
        return outputs

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        outputs = self._shared_step(batch, "train")
        # Each `self.log` call costs ~0.3-0.5 ms on a CPU: the step curve is logged only on the steps
        # Lightning writes to the loggers (every trainer.log_every_n_steps), the epoch mean at its end.
        if self._is_logging_step():
            self.log("train/loss_step", outputs["loss"], on_step=True, on_epoch=False, prog_bar=True)
        return outputs

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._shared_step(batch, "test")

    def _is_logging_step(self) -> bool:
        every = self.trainer.log_every_n_steps
        return bool(self.trainer.fast_dev_run) or (every > 0 and (self.global_step + 1) % every == 0)

    # ------------------------------------------------------------------ epoch ends: compute and log once
    def on_train_epoch_end(self) -> None:
        self.log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self.log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self.log_epoch("test")

    def log_epoch(self, stage: str) -> None:
        """Log the stage's mean loss (``train/loss_epoch``, ``val/loss``, ``test/loss``) and metrics, then
        reset them; nothing when the stage saw no batch."""
        loss_mean, buffer = self.loss_means[stage], self.metric_buffers[stage]
        if not loss_mean.count:
            return
        loss = loss_mean.compute_and_reset()
        computed = buffer.compute()
        buffer.reset()
        prefix = f"{stage}/"
        values = self.epoch_values(stage, {k.removeprefix(prefix): v for k, v in computed.items()})
        shown = stage != "train"
        # sync_dist: under DDP the epoch loss is the mean over every process's batches (no-op on one device);
        # the metrics are already gathered by torchmetrics' compute().
        self.log(
            "train/loss_epoch" if stage == "train" else f"{stage}/loss", loss, prog_bar=shown, sync_dist=True
        )
        bar = {prefix + k: v for k, v in values.items() if k in self.progress_bar_metrics}
        rest = {prefix + k: v for k, v in values.items() if k not in self.progress_bar_metrics}
        if bar:
            self.log_dict(bar, prog_bar=shown)
        if rest:
            self.log_dict(rest)

    # ------------------------------------------------------------------ lifecycle
    def setup(self, stage: str) -> None:
        if self._trainer is not None:
            # callbacks with nothing to do per batch leave Lightning's per-step dispatch (utils.callback_hooks)
            skip_noop_batch_hooks(self.trainer.callbacks)
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if isinstance(datamodule, DescribesData):
            self.data_info = datamodule.data_info()
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
        # plain builtins only, so the checkpoint loads with torch.load(weights_only=True)
        checkpoint["data_info"] = self.data_info.to_dict() if self.data_info is not None else {}
        # Which task class to rebuild (evaluate/predict from the checkpoint alone).
        checkpoint["task_class"] = f"{type(self).__module__}.{type(self).__qualname__}"
        # Interrupted mid-epoch (Ctrl-C, SIGTERM): carry the epoch's running training loss and metrics, so
        # the resumed epoch's train/* values cover all its batches, as in an uninterrupted run.
        if self._trainer is not None and self.trainer.interrupted and self.loss_means["train"].count:
            checkpoint[RUNNING_TRAIN_EPOCH] = {
                "loss": self.loss_means["train"].state(),
                "metrics": self.metric_buffers["train"].state(),
            }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.data_info = checkpoint.get("data_info")
        running = checkpoint.get(RUNNING_TRAIN_EPOCH)
        if running:
            self.loss_means["train"].load_state(running["loss"])
            self.metric_buffers["train"].load_state(running["metrics"])

    # ------------------------------------------------------------------ optimisation
    def default_scheduler(self) -> dict[str, Any] | None:
        """The learning-rate schedule of ``scheduler=auto`` (the default): none here; a task overrides it."""
        return None

    def configure_optimizers(self):
        optimizer = build_optimizer(
            self.hparams.optimizer or {"_target_": "torch.optim.Adam"}, self, self.hparams.lr_multipliers
        )
        total_steps = None
        if self._trainer is not None:
            total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler_config = self.hparams.scheduler
        if scheduler_config and scheduler_config.get("auto"):
            scheduler_config = self.default_scheduler()
        scheduler = build_scheduler(scheduler_config, optimizer, self.hparams.monitor, total_steps)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
