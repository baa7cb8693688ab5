"""Shared pytest setup: one torch thread per xdist worker so two workers share 2 cores without thrashing."""

import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# Plots and projector thumbnails must never try to open a window.
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def run_dir(tmp_path):
    """A fresh run directory for one training run."""
    path = tmp_path / "run"
    path.mkdir()
    return path
