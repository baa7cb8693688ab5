"""An output folder replaced as one unit: a run writes into a hidden staging folder beside ``out`` and swaps it
in only when everything is written, so earlier results are never mixed with new ones nor lost to a failure.

The folder ``out`` may be absent, empty, or hold an earlier prediction (its ``predict.json``); anything else
is refused before any work, as is an ``out`` that holds or is the input (replacing it would delete the input).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from lit_vision.errors import UserError

# Written last by every prediction run: a folder with it holds an earlier prediction and may be replaced.
MARKER_NAME = "predict.json"


def check_output_folder(out: str | Path, input: str | Path) -> Path:
    """``out`` as an absolute path, after refusing a folder the run must not replace (UserError naming it)."""
    out_dir = Path(out).expanduser().absolute()
    source = Path(input).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"out={out} is a file; predictions go to a folder: choose another out=.")
    if _same_or_inside(source, out_dir):
        raise UserError(
            f"input={input} lies inside out={out}, which this run replaces, so it would be overwritten: choose "
            "another out= folder."
        )
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER_NAME).is_file():
        raise UserError(
            f"out={out} already holds files that are not an earlier prediction (no {MARKER_NAME} in it); a "
            "prediction replaces its whole output folder. Choose a new or empty folder with out=..."
        )
    return out_dir


class OutputFolder:
    """Stage a run's files in ``staging`` (beside ``target``); :meth:`commit` swaps them in, :meth:`discard`
    drops them and leaves ``target`` as it was."""

    def __init__(self, target: Path) -> None:
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        # Hidden, so a folder search of an input that contains `out` skips it too.
        self.staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))

    def final_path(self, staged: str | Path) -> Path:
        """Where a file written under :attr:`staging` will be after :meth:`commit`."""
        return self.target / Path(staged).relative_to(self.staging)

    def commit(self) -> None:
        """Replace ``target`` by the staged folder (the earlier one is moved aside, then deleted)."""
        os.chmod(self.staging, 0o777 & ~_umask())  # mkdtemp makes it private; give it a folder's usual mode
        old = None
        if self.target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=self.target.parent))
            os.replace(self.target, old / self.target.name)
        try:
            os.replace(self.staging, self.target)
        except BaseException:
            if old is not None:  # put the earlier results back
                os.replace(old / self.target.name, self.target)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        """Delete the staged files; ``target`` is untouched."""
        shutil.rmtree(self.staging, ignore_errors=True)


def _same_or_inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or path.is_relative_to(folder)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
