"""Grad-CAM maps of a classifier (pytorch-grad-cam's ``GradCAM`` on the net's last convolution).

Grad-CAM weighs the last convolution's activation maps by the spatially averaged gradient of one class's
score and keeps the positive part: the regions that raised that class. :func:`grad_cam_maps` runs it on a
few images (also from inside ``Trainer.test``, whose inference mode it leaves for the backward pass);
:func:`cam_overlays` blends the maps onto the pictures.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn


class MainOutput(nn.Module):
    """The model with one float tensor out: the main logits of nets that also return auxiliary outputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor) -> Tensor:
        out = self.model(inputs)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.float()


def last_conv_layer(model: nn.Module) -> nn.Module | None:
    """The last ``nn.Conv2d`` registered in ``model`` (for sequential CNNs, the one closest to the head)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def grad_cam_maps(
    model: nn.Module, images: Tensor, classes: Sequence[int], layer: nn.Module | None = None
) -> Tensor:
    """``(N, H, W)`` Grad-CAM maps in ``[0, 1]`` (each scaled to its own maximum, at the images' size) of
    ``classes[i]`` for ``images[i]``, taken at ``layer`` (default: the last Conv2d). ValueError when the
    model has no convolution."""
    # imported here: pytorch-grad-cam loads OpenCV, which only this opt-in picture needs
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if any(p.dtype != torch.float32 for p in model.parameters()):
        # bf16-true / 16-true weights: a float32 copy (the maps are read back as numpy, which has no bf16)
        index = list(model.modules()).index(layer) if layer is not None else None
        model = copy.deepcopy(model).float()
        layer = list(model.modules())[index] if index is not None else None
    layer = layer if layer is not None else last_conv_layer(model)
    if layer is None:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer for Grad-CAM")
    was_training = model.training
    targets = [ClassifierOutputTarget(int(c)) for c in classes]
    try:
        with torch.inference_mode(False), torch.enable_grad():
            inputs = images.detach().clone().float()  # a normal tensor, even when made in inference mode
            with GradCAM(model=MainOutput(model), target_layers=[layer]) as cam:
                maps = cam(input_tensor=inputs, targets=targets)
    finally:
        model.train(was_training)
    return torch.from_numpy(np.asarray(maps, dtype=np.float32))


def cam_overlays(pictures: Tensor, maps: Tensor, weight: float = 0.5) -> np.ndarray:
    """``(N, H, W, 3)`` uint8: ``pictures`` (``(N, C, H, W)`` in ``[0, 1]``, grey or RGB) under the maps'
    jet colours (pytorch-grad-cam's ``show_cam_on_image``)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = pictures.float().clamp(0, 1)
    if rgb.shape[1] == 1:
        rgb = rgb.repeat(1, 3, 1, 1)
    rgb = rgb[:, :3].permute(0, 2, 3, 1).numpy()
    return np.stack(
        [
            show_cam_on_image(picture, cam.numpy(), use_rgb=True, image_weight=1.0 - weight)
            for picture, cam in zip(rgb, maps, strict=True)
        ]
    )
