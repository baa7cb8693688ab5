"""Where the suite finds the repository and the real data sets it reports on."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Set by ``python -m bench --data DIR``; read by the cases that train on real data.
DATA_ENV = "LIT_VISION_SHARED_DATA"


def shared_data_dir() -> Path:
    """The folder of real data sets: ``$LIT_VISION_SHARED_DATA``, else ``<repo>/../shared/data`` (where CI
    keeps it beside the clone)."""
    return Path(os.environ.get(DATA_ENV) or ROOT.parent / "shared" / "data")
