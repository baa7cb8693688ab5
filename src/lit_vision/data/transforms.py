"""torchvision.transforms.v2 pipelines from config.

A pipeline is a list; each item names one v2 transform and its arguments, either in Hydra's form
``{_target_: torchvision.transforms.v2.RandomCrop, size: 32, padding: 4}`` or the short form
``{RandomCrop: {size: 32, padding: 4}}``. Containers (RandomApply, RandomChoice, RandomOrder, Compose)
take a nested list under ``transforms``. Custom transforms are named by dotted path in either form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydra.utils import get_class
from torchvision.transforms import v2

CONTAINERS = {"Compose", "RandomApply", "RandomChoice", "RandomOrder"}


def resolve_transform_class(name: str) -> type:
    """``RandomCrop`` -> ``torchvision.transforms.v2.RandomCrop``; dotted paths are imported as given."""
    if "." not in name:
        if not hasattr(v2, name):
            raise ValueError(
                f"unknown transform {name!r}: not in torchvision.transforms.v2 "
                "(use a dotted path such as my_pkg.MyTransform for your own)"
            )
        return getattr(v2, name)
    return get_class(name)


def build_transform(item: Mapping[str, Any] | str) -> v2.Transform:
    """Build one transform from its config item (see the module docstring)."""
    if isinstance(item, str):
        name, kwargs = item, {}
    elif "_target_" in item:
        kwargs = {k: v for k, v in item.items() if k != "_target_"}
        name = str(item["_target_"])
    elif len(item) == 1:
        name, kwargs = next(iter(item.items()))
        kwargs = dict(kwargs or {})
    else:
        raise ValueError(f"a transform item needs one name or a _target_, got keys {list(item)}")
    cls = resolve_transform_class(name)
    if cls.__name__ in CONTAINERS and "transforms" in kwargs:
        kwargs["transforms"] = [build_transform(t) for t in kwargs["transforms"]]
    for key, value in list(kwargs.items()):
        if isinstance(value, Sequence) and not isinstance(value, str):
            kwargs[key] = list(value)  # ListConfig -> list: v2 checks for list/tuple
    return cls(**kwargs)


def build_transforms(items: Sequence[Mapping[str, Any] | str] | None) -> v2.Compose | None:
    """Build a ``v2.Compose`` from a list of items; None or an empty list gives None."""
    if not items:
        return None
    return v2.Compose([build_transform(item) for item in items])
