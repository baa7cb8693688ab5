"""Hydra command-line overrides: their keys and quoting values (file names) for Hydra's grammar."""

from __future__ import annotations

from collections.abc import Sequence


def override_key(override: str) -> str:
    """``+model.net.width=3`` -> ``model.net.width``; ``optim=sgd`` -> ``optim``; ``~callbacks.x`` -> ``callbacks.x``."""
    key = override.split("=", 1)[0]
    return key.lstrip("+~").split("@", 1)[0]


# Characters Hydra's override grammar does not accept in an unquoted value (checkpoint names often hold "=").
_NEEDS_QUOTES = set("=,[]{}()'\" \\$:")


def quote_value(value: str) -> str:
    """``value`` quoted for a Hydra override when it needs it (``epoch3-val_acc=0.95.ckpt``)."""
    if not value or value[0] in "'\"" or not (_NEEDS_QUOTES & set(value)):
        return value
    quote = '"' if "'" in value else "'"
    return f"{quote}{value}{quote}"


def quote_path_overrides(argv: Sequence[str], keys: Sequence[str] = ("ckpt_path",)) -> list[str]:
    """Quote the values of path overrides (``ckpt_path=...``) so any file name parses."""
    out = [argv[0]] if argv else []
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        out.append(f"{key}={quote_value(value)}" if sep and key.lstrip("+") in keys else arg)
    return out


def unquote(value: str) -> str:
    """``value`` without one pair of surrounding quotes (the inverse of :func:`quote_value`)."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value
