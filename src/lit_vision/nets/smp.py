"""Any segmentation-models-pytorch architecture and encoder, by name (``model=smp``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from lit_vision.errors import UserError


def smp_model(
    arch: str = "Unet",
    encoder_name: str = "resnet34",
    encoder_weights: str | None = None,
    in_channels: int = 3,
    out_channels: int = 1,
    **kwargs: Any,
) -> nn.Module:
    """``smp.create_model(arch, encoder_name, ...)`` returning logits with ``out_channels`` channels.

    ``encoder_weights`` (e.g. "imagenet") downloads pretrained encoder weights on first use; the default
    null starts from random weights and needs no network.
    """
    import segmentation_models_pytorch as smp

    try:
        return smp.create_model(
            arch,
            encoder_name=encoder_name,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=out_channels,
            **kwargs,
        )
    except KeyError as exc:
        raise UserError(
            f"segmentation-models-pytorch does not know {exc}: model.net.arch={arch!r}, "
            f"model.net.encoder_name={encoder_name!r}. Architectures: Unet, UnetPlusPlus, FPN, PSPNet, "
            "DeepLabV3, DeepLabV3Plus, Linknet, MAnet, PAN, UPerNet, Segformer, DPT; encoders: "
            "smp.encoders.get_encoder_names()."
        ) from exc
    except (OSError, RuntimeError, ValueError) as exc:
        if encoder_weights is None:
            raise
        raise UserError(
            f"could not load the {encoder_weights!r} weights of encoder {encoder_name!r} ({exc}). Without "
            "internet access set model.net.encoder_weights=null, or put the weights in the torch/hf cache first."
        ) from exc
