"""Shared pytest setup: one torch thread per xdist worker so two workers share 2 cores without thrashing,
and the ``auto_precision`` fixture that runs a precision-sensitive test under both resolutions of
``trainer.precision: auto``."""

import os

import pytest
import torch

from lit_vision.utils.hardware import AUTO_PRECISION_CHOICES, AUTO_PRECISION_ENV

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


@pytest.fixture(params=AUTO_PRECISION_CHOICES)
def auto_precision(request, monkeypatch):
    """Run the test once with ``auto`` precision resolving to bf16-mixed and once to 32-true, whatever this
    machine would pick (``LIT_VISION_AUTO_PRECISION``, also seen by train.py subprocesses). Where bf16 is
    emulated it is slow: keep such tests' runs tiny."""
    monkeypatch.setenv(AUTO_PRECISION_ENV, request.param)
    return request.param
