"""Run folders and checkpoints: which run a checkpoint belongs to, its overrides, and collisions.

A run folder written by ``train.py`` holds ``checkpoints/``, ``config.yaml`` and Hydra's ``.hydra/`` record.
``python train.py ckpt_path=<run>/checkpoints/last.ckpt`` (resume) and ``train=false ckpt_path=...``
(evaluate) start from that run's own command-line overrides, then apply the ones given now, so the same
model and data are rebuilt without retyping them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from omegaconf import OmegaConf

from lit_vision.config.overrides import override_key, quote_path_overrides, unquote
from lit_vision.utils.distributed import is_ddp_child

# What a previous run leaves in its folder; a folder holding any of these is "used".
RUN_DIR_MARKERS = ("config.yaml", "metrics.json", "checkpoints", ".hydra", "tensorboard", "csv")
# Overrides that describe how a run was launched rather than what it trains: never reused.
NOT_REUSED = ("ckpt_path", "hparams_search", "resume_in_run_dir", "resume_sweep", "train", "test")
RESUME_RECORD_PREFIX = "resume-"


def run_dir_of_checkpoint(ckpt_path: str | os.PathLike | None) -> Path | None:
    """The run folder holding ``ckpt_path`` (``<run>/checkpoints/x.ckpt`` with a Hydra record), else None."""
    if not ckpt_path:
        return None
    path = Path(ckpt_path).expanduser().resolve()
    run_dir = path.parent.parent
    if path.parent.name == "checkpoints" and (run_dir / ".hydra" / "overrides.yaml").is_file():
        return run_dir
    return None


def latest_overrides_file(run_dir: Path) -> Path:
    """The run's newest override record: ``.hydra/overrides.yaml`` or that of its latest resume."""
    records = sorted((run_dir / ".hydra").glob(f"{RESUME_RECORD_PREFIX}*/overrides.yaml"))
    return records[-1] if records else run_dir / ".hydra" / "overrides.yaml"


def reusable_overrides(run_dir: Path) -> list[str]:
    """The overrides a run was started with, minus launch-only ones (see ``NOT_REUSED``)."""
    saved = OmegaConf.to_container(OmegaConf.load(latest_overrides_file(run_dir)))
    return [str(o) for o in saved if override_key(str(o)).split(".")[0] not in NOT_REUSED]


def argv_with_run_overrides(argv: Sequence[str], ckpt_keys: Sequence[str] = ("ckpt_path",)) -> list[str]:
    """``argv`` with the checkpoint's run overrides inserted before the user's (which therefore win).

    Unchanged for multirun (``-m``), inside DDP child processes (their command already has them), and when
    the checkpoint does not sit in a run folder.
    """
    argv = quote_path_overrides(argv, ckpt_keys)
    if is_ddp_child() or any(a in ("-m", "--multirun") for a in argv[1:]):
        return argv
    ckpt = None
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") in ckpt_keys:
            ckpt = unquote(value)
    run_dir = run_dir_of_checkpoint(ckpt)
    if run_dir is None:
        return argv
    return [argv[0], *reusable_overrides(run_dir), *argv[1:]]


def holds_previous_run(folder: str | os.PathLike) -> bool:
    """True when ``folder`` already contains a run's files (so writing there would mix two runs)."""
    folder = Path(folder)
    return folder.is_dir() and any((folder / marker).exists() for marker in RUN_DIR_MARKERS)


def holds_previous_sweep(folder: str | os.PathLike) -> bool:
    """True when ``folder`` already contains a sweep (its multirun.yaml or any job folder)."""
    folder = Path(folder)
    return folder.is_dir() and any(
        p.name == "multirun.yaml" or (p.is_dir() and holds_previous_run(p)) for p in folder.iterdir()
    )


def next_free_dir(folder: str | os.PathLike, in_use: Callable[[Path], bool] = holds_previous_run) -> Path:
    """``folder`` itself if unused, else ``folder_1``, ``folder_2``, ... (the first one that does not exist)."""
    folder = Path(folder)
    candidate, n = folder, 0
    while in_use(candidate) if candidate == folder else candidate.exists():
        n += 1
        candidate = folder.with_name(f"{folder.name}_{n}")
    return candidate
