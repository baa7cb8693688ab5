"""Using a trained checkpoint: batched prediction to files, preprocessing of new inputs, export.

``python -m lit_vision.cli.predict`` and ``python -m lit_vision.cli.export`` are the command lines over
:func:`predict` and :func:`export_model`; :func:`load_model` and :class:`ImagePreprocessor` are the pieces
for your own code (README, section Inference).

The names are imported on first use: training imports ``lit_vision.inference.checkpoint`` (which runs this
file), and must not pay for the prediction writers (pandas) and export modules it never uses.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module that defines it
_EXPORTS = {
    "ExportCheckFailed": "lit_vision.inference.export",
    "ExportResult": "lit_vision.inference.export",
    "ImagePreprocessor": "lit_vision.inference.preprocess",
    "LoadedModel": "lit_vision.inference.checkpoint",
    "export_model": "lit_vision.inference.export",
    "load_model": "lit_vision.inference.checkpoint",
    "predict": "lit_vision.inference.api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
