"""Weight initialisation schemes from config, applied to the conv and linear layers of a net.

A config is a scheme name (``init: kaiming_normal``) or a mapping::

    init:
      scheme: kaiming_normal      # kaiming_normal|kaiming_uniform|xavier_normal|xavier_uniform|orthogonal|
                                  # normal|uniform|trunc_normal|constant
      mode: fan_out               # any argument of the torch.nn.init function (gain, a, mean, std, val...)
      nonlinearity: relu
      bias: 0.0                   # biases are set to this constant; null keeps them
      modules: null               # only layers under these prefixes (null: the whole net)
      exclude: []                 # skip layers under these prefixes; `head` means the classifier head(s)

``gain`` may name a nonlinearity (``gain: relu``), which becomes ``torch.nn.init.calculate_gain('relu')``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn
from torch.nn.modules.conv import _ConvNd

from lit_vision.nets.heads import expand_head_alias, is_under
from lit_vision.nets.weights import load_pretrained_file, pretrained_loading_enabled

# scheme -> (torch.nn.init function, default arguments)
SCHEMES: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "kaiming_normal": (nn.init.kaiming_normal_, {"mode": "fan_in", "nonlinearity": "relu"}),
    "kaiming_uniform": (nn.init.kaiming_uniform_, {"mode": "fan_in", "nonlinearity": "relu"}),
    "xavier_normal": (nn.init.xavier_normal_, {"gain": 1.0}),
    "xavier_uniform": (nn.init.xavier_uniform_, {"gain": 1.0}),
    "orthogonal": (nn.init.orthogonal_, {"gain": 1.0}),
    "normal": (nn.init.normal_, {"mean": 0.0, "std": 0.01}),
    "uniform": (nn.init.uniform_, {"a": -0.05, "b": 0.05}),
    "trunc_normal": (nn.init.trunc_normal_, {"mean": 0.0, "std": 0.02}),
    "constant": (nn.init.constant_, {"val": 0.0}),
}
CONTROL_KEYS = ("scheme", "bias", "modules", "exclude")
LAYER_TYPES = (_ConvNd, nn.Linear)


def parse_init_config(config: str | Mapping[str, Any]) -> dict[str, Any]:
    """Normalise a scheme name or mapping into ``{scheme, kwargs, bias, modules, exclude}``."""
    if isinstance(config, str):
        config = {"scheme": config}
    config = dict(config)
    scheme = str(config.get("scheme", "")).lower()
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose one of {sorted(SCHEMES)}")
    fn, defaults = SCHEMES[scheme]
    kwargs = {**defaults, **{k: v for k, v in config.items() if k not in CONTROL_KEYS}}
    if isinstance(kwargs.get("gain"), str):
        kwargs["gain"] = nn.init.calculate_gain(kwargs["gain"])
    return {
        "scheme": scheme,
        "fn": fn,
        "kwargs": kwargs,
        "bias": config.get("bias", 0.0),
        "modules": list(config.get("modules") or []),
        "exclude": list(config.get("exclude") or []),
    }


def init_weights(net: nn.Module, config: str | Mapping[str, Any]) -> list[str]:
    """Initialise the weights (and biases) of ``net``'s conv/linear layers; return the layers touched."""
    spec = parse_init_config(config)
    include: Sequence[str] = expand_head_alias(spec["modules"], net)
    exclude: Sequence[str] = expand_head_alias(spec["exclude"], net)
    touched: list[str] = []
    for name, module in net.named_modules():
        if not isinstance(module, LAYER_TYPES):
            continue
        if include and not is_under(name, include):
            continue
        if exclude and is_under(name, exclude):
            continue
        spec["fn"](module.weight, **spec["kwargs"])
        if module.bias is not None and spec["bias"] is not None:
            nn.init.constant_(module.bias, float(spec["bias"]))
        touched.append(name)
    if not touched:
        raise ValueError(
            f"init {spec['scheme']!r} matched no conv/linear layer (modules={include}, exclude={exclude})"
        )
    return touched


def prepare_net(
    net: nn.Module,
    init: str | Mapping[str, Any] | None = None,
    pretrained_path: str | None = None,
) -> dict[str, Any] | None:
    """Apply an ``init`` scheme, then partially load ``pretrained_path``; return the load report (or None).

    Both are what a model config's ``init`` / ``pretrained_path`` keys ask for. The file is not read while a
    task is rebuilt from a checkpoint (the checkpoint holds the trained weights).
    """
    if init:
        spec = parse_init_config(init)
        if getattr(net, "weights", None) and not spec["modules"]:
            raise ValueError(
                f"init {spec['scheme']!r} would overwrite the pretrained weights {net.weights!r}; restrict it "
                "with `init: {scheme: ..., modules: [head]}` or drop `weights`"
            )
        init_weights(net, init)
    if pretrained_path and pretrained_loading_enabled():
        return load_pretrained_file(net, pretrained_path).as_dict()
    return None
