"""The segmentation tutorial's UNet, with every layer registered in ``__init__``.

Encoder: ``depth`` blocks of two 3x3 conv -> BatchNorm -> ReLU, each followed by 2x2 max-pooling, widths
``init_features * 2**i``; a bottleneck block; decoder: 2x2 transposed convolutions that double the size,
concatenation with the encoder output of the same size (the skip connection), one block each; a 1x1
convolution to ``out_channels`` logits. With the defaults (3 -> 1 channel, 32 features, depth 4) it is the
tutorial's network, except that its BatchNorm layers are real submodules: the tutorial created them
inside ``forward``, so they were never trained, saved, nor moved to the GPU, and always used batch
statistics. The net returns logits; the task applies sigmoid/softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBlock(nn.Sequential):
    """Two 3x3 'same' convolutions, each followed by BatchNorm (optional) and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True) -> None:
        layers: list[nn.Module] = []
        for i in range(2):
            layers.append(
                nn.Conv2d(
                    in_channels if i == 0 else out_channels, out_channels, 3, padding=1, bias=not batch_norm
                )
            )
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class UNet(nn.Module):
    """UNet with ``depth`` down/up levels; inputs of any size (padded to a multiple of ``2**depth``)."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        init_features: int = 32,
        depth: int = 4,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        widths = [init_features * 2**i for i in range(depth + 1)]
        self.depth = depth
        self.encoders = nn.ModuleList()
        prev = in_channels
        for width in widths[:-1]:
            self.encoders.append(ConvBlock(prev, width, batch_norm))
            prev = width
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.bottleneck = ConvBlock(widths[-2], widths[-1], batch_norm)
        self.upconvs = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.upconvs.append(nn.ConvTranspose2d(width * 2, width, kernel_size=2, stride=2))
            self.decoders.append(ConvBlock(width * 2, width, batch_norm))
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = 2**self.depth
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "constant"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for upconv, decoder, skip in zip(self.upconvs, self.decoders, reversed(skips), strict=True):
            x = decoder(torch.cat((upconv(x), skip), dim=1))
        logits = self.head(x)
        return logits[..., :height, :width] if pad_h or pad_w else logits
