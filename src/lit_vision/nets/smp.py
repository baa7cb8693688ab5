"""Any segmentation-models-pytorch architecture and encoder, by name (``model=smp``), and a local weights
file for the encoder (``model.net.encoder_path``), for machines without internet access."""

from __future__ import annotations

import difflib
import logging
import os
from typing import Any

import torch
from torch import nn

from lit_vision.errors import UserError
from lit_vision.nets.weights import pretrained_loading_enabled, read_state_dict

log = logging.getLogger("lit_vision")

ARCHITECTURES = (
    "Unet, UnetPlusPlus, FPN, PSPNet, DeepLabV3, DeepLabV3Plus, Linknet, MAnet, PAN, UPerNet, Segformer, DPT"
)
# Prefixes a weights file may put before the encoder's own names: a whole smp model (encoder.), a lit_vision
# checkpoint (net.encoder.), a DDP or compiled wrapper; and what smp's timm-universal encoders (tu-) add.
STRIP_PREFIXES = (
    "",
    "encoder.",
    "net.encoder.",
    "model.encoder.",
    "module.",
    "module.encoder.",
    "_orig_mod.",
)
ADD_PREFIXES = ("", "model.")


def smp_encoder_names() -> list[str]:
    """smp's own encoder names (``tu-<timm name>`` selects any timm model as well)."""
    import segmentation_models_pytorch as smp

    return list(smp.encoders.get_encoder_names())


def check_encoder_name(encoder_name: str) -> None:
    """UserError for an encoder smp does not know, listing the closest names."""
    import timm

    if encoder_name.startswith("tu-"):
        timm_name = encoder_name[3:]
        if timm.is_model(timm_name):
            return
        close = [f"tu-{n}" for n in difflib.get_close_matches(timm_name, timm.list_models(), n=6, cutoff=0.6)]
    else:
        names = smp_encoder_names()
        if encoder_name in names:
            return
        close = difflib.get_close_matches(encoder_name, names, n=6, cutoff=0.6)
    hint = f"Close matches: {', '.join(close)}." if close else "No known name is close."
    raise UserError(
        f"model.net.encoder_name={encoder_name!r} is not an encoder of segmentation-models-pytorch. {hint} "
        "smp's encoders: python -c \"import segmentation_models_pytorch as smp; "
        'print(smp.encoders.get_encoder_names())"; any timm model as tu-<name> (e.g. tu-convnext_atto).'
    )


def smp_model(
    arch: str = "Unet",
    encoder_name: str = "resnet34",
    encoder_weights: str | None = None,
    in_channels: int = 3,
    out_channels: int = 1,
    encoder_path: str | os.PathLike | None = None,
    **kwargs: Any,
) -> nn.Module:
    """``smp.create_model(arch, encoder_name, ...)`` returning logits with ``out_channels`` channels.

    ``encoder_weights`` (e.g. "imagenet") downloads pretrained encoder weights on first use; the default
    null starts from random weights and needs no network. ``encoder_path`` loads a local weights file into
    the encoder instead (see :func:`load_encoder_file`); it is not read again when a checkpoint is loaded.
    """
    import segmentation_models_pytorch as smp

    check_encoder_name(encoder_name)
    if encoder_path and encoder_weights:
        raise UserError(
            f"model.net.encoder_path={str(encoder_path)!r} and model.net.encoder_weights={encoder_weights!r} "
            "both give the encoder's weights; set encoder_weights=null to use the local file."
        )
    try:
        model = smp.create_model(
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
            f"model.net.encoder_name={encoder_name!r}. Architectures: {ARCHITECTURES}."
        ) from exc
    except (OSError, RuntimeError, ValueError) as exc:
        if encoder_weights is None:
            raise
        raise UserError(
            f"could not load the {encoder_weights!r} weights of encoder {encoder_name!r} ({exc}). Without "
            "internet access set model.net.encoder_weights=null and give a local copy of the encoder's "
            "weights as model.net.encoder_path=FILE, or put the weights in the torch/hf cache first."
        ) from exc
    if encoder_path and pretrained_loading_enabled():
        load_encoder_file(model.encoder, encoder_path, encoder_name)
    return model


def _best_mapping(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> tuple[str, str, int]:
    best = ("", "", -1)
    for strip in STRIP_PREFIXES:
        for add in ADD_PREFIXES:
            hits = sum(1 for k in source if k.startswith(strip) and add + k[len(strip) :] in target)
            if hits > best[2]:
                best = (strip, add, hits)
    return best


def _fit_first_conv(value: torch.Tensor, wanted: torch.Size) -> torch.Tensor:
    """An RGB first-conv weight summed (one channel) or tiled (more), as smp and timm do."""
    from timm.models import adapt_input_conv

    if (
        value.ndim == 4
        and value.shape[1] == 3
        and value.shape[0] == wanted[0]
        and value.shape[2:] == wanted[2:]
    ):
        return adapt_input_conv(int(wanted[1]), value)
    return value


def load_encoder_file(encoder: nn.Module, path: str | os.PathLike, encoder_name: str) -> dict[str, list]:
    """Load every tensor of ``encoder`` from the weights file ``path``; UserError when some are missing.

    The file is a ``.safetensors`` file or a torch state dict (read as plain tensors): the encoder's own
    names, or a whole smp model / lit_vision checkpoint (``encoder.`` / ``net.encoder.`` prefixes), or a
    timm model's file for a ``tu-`` encoder. Tensors of the file that the encoder lacks (an ImageNet
    classifier) are skipped and logged; an RGB first conv is adapted to the encoder's input channels.
    Returns what was loaded and skipped.
    """
    key = "model.net.encoder_path"
    source = read_state_dict(path, key=key)
    target = encoder.state_dict()
    strip, add, hits = _best_mapping(source, target)
    if hits <= 0:
        raise UserError(
            f"{key}={str(path)!r}: no tensor name matches encoder {encoder_name!r} (file has e.g. "
            f"{list(source)[:3]}, the encoder has e.g. {list(target)[:3]}). Give the weights of this "
            "encoder (or of a whole smp model with it), or change model.net.encoder_name."
        )
    selected: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    for name, value in source.items():
        mapped = add + name[len(strip) :] if name.startswith(strip) else None
        if mapped is None or mapped not in target:
            unused.append(name)
            continue
        if value.shape != target[mapped].shape:
            value = _fit_first_conv(value, target[mapped].shape)
        selected[mapped] = value
    wrong = [
        f"{n} {tuple(v.shape)} vs {tuple(target[n].shape)}"
        for n, v in selected.items()
        if v.shape != target[n].shape
    ]
    missing = [n for n in target if n not in selected]
    # Tensors of the file under a module the encoder has (layer1.2.* for a resnet18 encoder): a deeper
    # variant's file. Those under modules it lacks (fc, classifier, head, a decoder) are dropped quietly.
    tops = {n[len(add) :].split(".", 1)[0] for n in target}
    extra = [n for n in unused if n.startswith(strip) and n[len(strip) :].split(".", 1)[0] in tops]
    if wrong or missing or extra:
        raise UserError(
            f"{key}={str(path)!r} does not fit encoder {encoder_name!r}: {len(missing)} of its "
            f"{len(target)} tensors are not in the file (e.g. {missing[:3]}), {len(wrong)} have another "
            f"shape (e.g. {wrong[:3]}) and {len(extra)} of the file's have no place in it (e.g. {extra[:3]}). "
            "The file is probably for another encoder (or depth); check model.net.encoder_name and "
            "model.net.encoder_depth."
        )
    encoder.load_state_dict(selected, strict=True)
    log.info(
        "Loaded %d encoder tensors of %s from %s%s",
        len(selected),
        encoder_name,
        path,
        f"; {len(unused)} unused (e.g. {', '.join(unused[:4])})" if unused else "",
    )
    return {"loaded": sorted(selected), "unused": unused}
