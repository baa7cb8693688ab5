"""Which process this is under a distributed launcher (rank from the environment)."""

from __future__ import annotations

import os


def process_rank() -> int:
    """The global rank of this process from the launcher's environment (0 when not distributed)."""
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        value = os.environ.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                continue
    return 0


def is_ddp_child() -> bool:
    """True in the processes Lightning's DDP launcher starts (they re-run the command with LOCAL_RANK)."""
    return os.environ.get("LOCAL_RANK", "0") != "0"
