"""Path checks cheap enough to run before torch and Lightning are imported (answers within a second)."""

from __future__ import annotations

from pathlib import Path

from lit_vision.errors import UserError


def require_checkpoint_file(value: str | Path, key: str = "ckpt", base: str | Path | None = None) -> Path:
    """``value`` as an absolute path (relative ones taken from ``base``, default the working directory);
    UserError "``key=value``: no such checkpoint file" when it is not a file."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path(base or Path.cwd()) / path
    if not path.is_file():
        where = "it is a folder; give a .ckpt file in it" if path.is_dir() else "check the path"
        raise UserError(f"{key}={value}: no such checkpoint file ({path}; {where}).")
    return path
