"""What the convolutions learned: the first layer's kernels, and the feature maps of one input image.

Both are image grids (no matplotlib), cheap enough to log every epoch on small nets.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn
from torchvision.utils import make_grid

from lit_vision.callbacks.base import MonitorCallback
from lit_vision.viz.images import grid_columns, minmax_per_item, single_view, unnormalize, upscale_to


def first_conv(module: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """The first ``nn.Conv2d`` registered in ``module`` (for nets built in order: the input layer)."""
    for name, child in module.named_modules():
        if isinstance(child, nn.Conv2d):
            return name, child
    return None


def kernel_grid(weight: Tensor, max_kernels: int = 256, min_tile: int = 24) -> Tensor:
    """A ``(3, H, W)`` grid of conv kernels, each min-max scaled on its own.

    Kernels over 3 input channels are shown in colour (one tile per output channel); otherwise every
    (output, input) kernel is a grey tile, one row per output channel.
    """
    weight = weight.detach().float().cpu()
    out_channels, in_channels = weight.shape[:2]
    if in_channels == 3:
        tiles, columns = weight, grid_columns(out_channels)
    else:
        tiles, columns = weight.reshape(-1, 1, *weight.shape[2:]), in_channels
        if in_channels == 1:
            columns = grid_columns(out_channels)
    tiles = minmax_per_item(tiles[:max_kernels])
    return make_grid(upscale_to(tiles, min_tile), nrow=min(columns, len(tiles)), padding=2, pad_value=0.5)


def stage_outputs(net: nn.Module, image: Tensor, max_stages: int = 12) -> list[tuple[str, Tensor]]:
    """The output of each stage of ``net`` for a single image ``(1, C, H, W)``.

    A stage is a run of consecutive modules (in the order they finish) whose outputs have the same spatial
    size; its output is the last one of the run (e.g. ``layer2`` of a ResNet, the ReLU after a conv of
    a plain CNN). Outputs of 1x1 size are skipped.
    """
    recorded: list[tuple[str, Tensor]] = []

    def record(name: str):
        def hook(_module, _inputs, output):
            if isinstance(output, Tensor) and output.ndim == 4:
                recorded.append((name, output.detach()[0].clone()))

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in net.named_modules() if n]
    try:
        with torch.no_grad():
            net(image)
    finally:
        for handle in handles:
            handle.remove()
    stages: list[tuple[str, Tensor]] = []
    for name, output in recorded:
        if output.shape[-1] * output.shape[-2] <= 1:
            continue
        if stages and stages[-1][1].shape[-2:] == output.shape[-2:]:
            stages[-1] = (name, output)
        else:
            stages.append((name, output))
    return stages[:max_stages]


def feature_map_grid(output: Tensor, max_channels: int = 16, min_tile: int = 32) -> Tensor:
    """A grid of the first ``max_channels`` channels of a ``(C, H, W)`` feature map, each min-max scaled."""
    tiles = minmax_per_item(output[:max_channels].float().cpu()).unsqueeze(1)
    return make_grid(upscale_to(tiles, min_tile), nrow=grid_columns(len(tiles)), padding=2, pad_value=1.0)


class ConvKernelImages(MonitorCallback):
    """Logs ``kernels/<layer>``: the first conv layer's kernels at the start of training and after every
    due epoch (see the tutorials' kernel visualisation)."""

    def __init__(
        self, every_n_epochs: int = 1, max_overhead: float | None = 0.02, max_kernels: int = 256
    ) -> None:
        super().__init__(every_n_epochs, max_overhead)
        self.max_kernels = int(max_kernels)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.enabled(trainer):
            self._log(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.epoch_due(trainer):
            with self.schedule.timed():
                self._log(trainer, pl_module)

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = self.writer(trainer)
        found = first_conv(getattr(pl_module, "net", pl_module))
        if writer is None or found is None:
            return
        name, conv = found
        writer.add_image(f"kernels/{name}", kernel_grid(conv.weight, self.max_kernels), trainer.global_step)


class FeatureMapImages(MonitorCallback):
    """Logs ``feature_maps/<k>_<module>``: the first validation image (``feature_maps/0_input``) and
    its feature maps after each stage of the net (see :func:`stage_outputs`), at every due epoch."""

    def __init__(
        self,
        every_n_epochs: int = 1,
        max_overhead: float | None = 0.02,
        max_channels: int = 16,
        max_stages: int = 12,
    ) -> None:
        super().__init__(every_n_epochs, max_overhead)
        self.max_channels = int(max_channels)
        self.max_stages = int(max_stages)
        self._due = False

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._due = self.epoch_due(trainer)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if not (self._due and batch_idx == 0 and dataloader_idx == 0):
            return
        self._due = False
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        images = single_view(images) if isinstance(images, Tensor) else images
        if not isinstance(images, Tensor) or images.ndim != 4:
            return
        writer = self.writer(trainer)
        if writer is None:
            return
        with self.schedule.timed():
            image = images[:1]
            step = trainer.global_step
            shown = unnormalize(image, getattr(pl_module, "data_info", None))[0][:3]
            writer.add_image("feature_maps/0_input", upscale_to(shown[None], 64)[0], step)
            net = getattr(pl_module, "net", pl_module)
            for index, (name, output) in enumerate(stage_outputs(net, image, self.max_stages), start=1):
                grid = feature_map_grid(output, self.max_channels)
                writer.add_image(f"feature_maps/{index}_{name}", grid, step)
