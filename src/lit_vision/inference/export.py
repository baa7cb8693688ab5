"""Exporting a checkpoint's net to ONNX or TorchScript, checked against PyTorch before it is declared done.

The exported graph is the task's net in float32 eval mode: one input ``input`` ``(batch, C, H, W)`` (or
``(batch, features)`` for tabular regression) with a dynamic batch axis, one output ``output``. A JSON
sidecar next to it (``<file>.json``) documents the preprocessing (decode, transforms, resize, mean/std), what
the output means (logits -> softmax / sigmoid / argmax, class names, threshold, target scaling) and the
verification: the export and the PyTorch net run on the same random batch, of another size than the one
traced, and the maximum absolute difference must stay within ``tolerance`` (1e-4 by default).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import lit_vision
from lit_vision.errors import UserError
from lit_vision.inference.checkpoint import LoadedModel, load_model
from lit_vision.inference.preprocess import ImagePreprocessor, as_size
from lit_vision.utils.io import write_json
from lit_vision.utils.paths import require_checkpoint_file

log = logging.getLogger("lit_vision")

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
EXPORTERS = ("auto", "dynamo", "legacy")
TRACE_BATCH = 2
# ONNX protobufs hold at most 2 GiB; bigger nets keep their weights in a side file.
SINGLE_FILE_LIMIT = 1.8 * 2**30


class ExportCheckFailed(Exception):
    """The exported model's outputs differ from PyTorch's by more than the tolerance."""


class ExportNet(nn.Module):
    """The net with one tensor out: the main output of nets that return tuples or dicts (aux heads).

    With ``target_mean`` / ``target_std`` (regression trained on standardised targets) the graph ends with
    ``output * std + mean``, so the exported model answers in the targets' units.
    """

    def __init__(
        self, net: nn.Module, target_mean: list[float] | None = None, target_std: list[float] | None = None
    ) -> None:
        super().__init__()
        self.net = net
        self.scaled = target_mean is not None and target_std is not None
        if self.scaled:
            self.register_buffer("target_mean", torch.tensor(target_mean, dtype=torch.float32).view(1, -1))
            self.register_buffer("target_std", torch.tensor(target_std, dtype=torch.float32).view(1, -1))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        out = self.net(inputs)
        if isinstance(out, dict):
            out = out["out"] if "out" in out else next(iter(out.values()))
        elif isinstance(out, (tuple, list)):
            out = out[0]
        if self.scaled:
            out = out.reshape(out.shape[0], -1) * self.target_std + self.target_mean
        return out


@dataclass
class ExportResult:
    """Where the export went and how well it agrees with PyTorch."""

    path: Path
    sidecar: Path
    format: str
    max_abs_diff: float
    tolerance: float
    metadata: dict[str, Any]


def input_shape(model: LoadedModel) -> tuple[int, ...]:
    """The per-sample input shape ``(C, H, W)`` (or ``(features,)``) from the checkpoint's data_info."""
    info = model.data_info
    if model.kind == "regression" and info.get("kind") == "tabular":
        return (len(info["feature_names"]),)
    size = as_size(info.get("image_size"))
    if size is None or info.get("in_channels") is None:
        raise UserError(
            f"{model.path} records no input size (data_info image_size / in_channels), which export needs to "
            "trace the net. Re-save it through `python train.py` with a DataModule that reports them."
        )
    return (int(info["in_channels"]), *size)


def export_model(
    ckpt: str | Path,
    format: str = "onnx",
    out: str | Path | None = None,
    *,
    opset: int | None = None,
    exporter: str = "auto",
    tolerance: float = 1e-4,
    check_batch_size: int = 3,
    trust_checkpoint: bool = False,
) -> ExportResult:
    """Export ``ckpt``'s net to ``format`` (onnx | torchscript), check it, and write the JSON sidecar.

    Raises :class:`ExportCheckFailed` (after writing the files, with ``passed: false`` in the sidecar)
    when the check's maximum absolute difference exceeds ``tolerance``, and UserError (before writing
    anything) when ``out`` or its sidecar is the checkpoint itself.
    """
    if format not in FORMATS:
        raise UserError(f"format={format!r}: choose one of {', '.join(FORMATS)}.")
    if exporter not in EXPORTERS:
        raise UserError(f"exporter={exporter!r}: choose one of {', '.join(EXPORTERS)}.")
    if int(check_batch_size) == TRACE_BATCH or int(check_batch_size) < 1:
        raise UserError(f"check_batch_size must be >= 1 and differ from the traced batch ({TRACE_BATCH}).")
    ckpt_file = require_checkpoint_file(ckpt)
    path = Path(out).expanduser() if out else ckpt_file.with_suffix(FORMATS[format])
    refuse_overwriting(ckpt_file, path, out)
    model = load_model(ckpt_file, trust_checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    scaling = (None, None)
    if model.kind == "regression":
        scaling = (model.data_info.get("target_mean"), model.data_info.get("target_std"))
    net = ExportNet(copy.deepcopy(model.task.net), *scaling).float().eval()
    shape = input_shape(model)
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(TRACE_BATCH, *shape, generator=generator)
    check = torch.randn(int(check_batch_size), *shape, generator=generator)
    with torch.no_grad():
        expected = net(check)
    if format == "onnx":
        used = write_onnx(net, example, path, opset, exporter)
        actual = run_onnx(path, check)
        runtime = f"onnxruntime {_version('onnxruntime')}"
    else:
        used = write_torchscript(net, example, path)
        actual = run_torchscript(path, check)
        runtime = f"torch.jit {torch.__version__}"
    diff = float((actual.float() - expected.float()).abs().max())
    passed = diff <= float(tolerance)
    metadata = describe(model, format, path, shape, tuple(expected.shape[1:]), used)
    metadata["verification"] = {
        "runtime": runtime,
        "against": f"PyTorch {torch.__version__}, float32, same random input",
        "batch_size": int(check_batch_size),
        "traced_batch_size": TRACE_BATCH,
        "max_abs_diff": diff,
        "tolerance": float(tolerance),
        "passed": passed,
    }
    sidecar = path.with_name(path.name + ".json")
    write_json(sidecar, metadata)
    result = ExportResult(path, sidecar, format, diff, float(tolerance), metadata)
    if not passed:
        raise ExportCheckFailed(
            f"{path}: the {format} export differs from PyTorch by up to {diff:.3g} (tolerance {tolerance:g}) on "
            f"a batch of {check_batch_size}; do not use it. Try exporter=legacy (ONNX), another opset, or "
            "format=torchscript."
        )
    return result


def refuse_overwriting(ckpt: Path, path: Path, out: str | Path | None) -> None:
    """UserError when the export ``path`` or its sidecar is the checkpoint ``ckpt`` (however it is spelled:
    ``./``, ``..``, a symbolic or hard link)."""
    for target in (path, path.with_name(path.name + ".json")):
        if _same_file(ckpt, target):
            given = (
                f"out={out}"
                if out
                else f"the default out= ({path.name}: the checkpoint's name, {path.suffix})"
            )
            raise UserError(
                f"{given} would overwrite the checkpoint {ckpt} that is being exported; nothing was written. "
                f"Choose another file, e.g. out={ckpt.with_name(ckpt.stem + '_export' + path.suffix)}."
            )


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def write_onnx(net: nn.Module, example: torch.Tensor, path: Path, opset: int | None, exporter: str) -> str:
    """``torch.onnx.export`` with a dynamic batch axis; returns which exporter wrote the file."""
    large = sum(p.numel() * p.element_size() for p in net.parameters()) > SINGLE_FILE_LIMIT
    common: dict[str, Any] = {"input_names": ["input"], "output_names": ["output"], "opset_version": opset}
    if exporter in ("auto", "dynamo"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    net,
                    (example,),
                    str(path),
                    dynamo=True,
                    external_data=large,
                    dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                    verbose=False,
                    **common,
                )
            return "torch.onnx.export (dynamo, torch.export-based)"
        except Exception as exc:
            if exporter == "dynamo":
                raise UserError(f"the dynamo ONNX exporter failed: {exc}. Try exporter=legacy.") from exc
            log.warning("The dynamo ONNX exporter failed (%s); trying the TorchScript-based one.", exc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (example,),
            str(path),
            dynamo=False,
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            **common,
        )
    return "torch.onnx.export (legacy, TorchScript-based)"


def run_onnx(path: Path, inputs: torch.Tensor) -> torch.Tensor:
    """Run the ONNX file with onnxruntime on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return torch.from_numpy(session.run(None, {name: inputs.numpy()})[0])


def write_torchscript(net: nn.Module, example: torch.Tensor, path: Path) -> str:
    """``torch.jit.trace`` the net and save it."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # jit's deprecation notes; the check below catches a bad trace
        traced = torch.jit.trace(net, example)
        traced.save(str(path))
    return "torch.jit.trace"


def run_torchscript(path: Path, inputs: torch.Tensor) -> torch.Tensor:
    """Load the saved TorchScript file and run it."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu")(inputs)


def output_meaning(model: LoadedModel, output_shape: tuple[int, ...]) -> dict[str, Any]:
    """What the exported output holds and how to turn it into predictions."""
    hparams = model.task.hparams
    names = model.class_names
    if model.kind == "classification":
        loss = str((hparams.get("loss") or {}).get("_target_", ""))
        log_probs = loss.endswith("NLLLoss")
        # calibrate=temperature: the checkpoint's softmax temperature, applied outside the graph
        temperature = getattr(model.task, "temperature", None)
        if temperature is not None:
            how = f"softmax over dim 1 of output / temperature ({temperature:.6g}) gives calibrated class probabilities"
        elif log_probs:
            how = "exp() gives class probabilities"
        else:
            how = "softmax over dim 1 gives class probabilities"
        return {
            "kind": "log-probabilities" if log_probs else "logits",
            "shape": ["batch", *output_shape],
            "to_prediction": how + "; argmax over dim 1 is the class index into class_names",
            "temperature": None if temperature is None else float(temperature),
            "class_names": names,
            "labels": model.data_info.get("folder_names"),
        }
    if model.kind == "multilabel":
        thresholds = [round(float(t), 4) for t in model.task.thresholds.tolist()]
        return {
            "kind": "logits",
            "shape": ["batch", *output_shape],
            "to_prediction": "sigmoid gives each label's probability; label i is present where it is >= "
            "thresholds[i] (chosen on validation)",
            "thresholds": thresholds,
            "class_names": names,
        }
    if model.kind == "segmentation":
        binary = bool(hparams.get("binary"))
        threshold = float(hparams.get("threshold", 0.5))
        return {
            "kind": "logits",
            "shape": ["batch", *output_shape],
            "to_prediction": (
                f"sigmoid(output[:, 0]) > {threshold} is class 1 ({names[1] if len(names) > 1 else 'foreground'})"
                if binary
                else "argmax over dim 1 is each pixel's class index into class_names"
            ),
            "binary": binary,
            "threshold": threshold if binary else None,
            "class_names": names,
            "palette": model.data_info.get("palette"),
            "resize_back": "resize the class probabilities (bilinear) or the mask (nearest) to the photo's size",
        }
    scaled = model.data_info.get("target_mean") is not None and model.data_info.get("target_std") is not None
    return {
        "kind": "regression values",
        "shape": ["batch", *output_shape],
        "target_names": model.data_info.get("target_names"),
        "to_prediction": (
            "values in the targets' units: the training target scaling (output * target_std + target_mean) is "
            "part of the graph"
            if scaled
            else "values in the targets' units"
        ),
        "target_mean": model.data_info.get("target_mean"),
        "target_std": model.data_info.get("target_std"),
    }


def describe(
    model: LoadedModel,
    format: str,
    path: Path,
    shape: tuple[int, ...],
    output_shape: tuple[int, ...],
    exporter: str,
) -> dict[str, Any]:
    """The sidecar document (everything but the verification block)."""
    info = model.data_info
    if len(shape) == 3:
        preprocessing = ImagePreprocessor(info, model.kind).describe()
        preprocessing["eval_transforms"] = list(info.get("eval_transforms") or [])
        layout = "NCHW"
    else:
        preprocessing = {
            "feature_names": info.get("feature_names"),
            "numeric_columns": info.get("numeric_columns"),
            "feature_mean": info.get("feature_mean"),
            "feature_std": info.get("feature_std"),
            "categorical": info.get("categorical"),
            "formula": (
                "input row = [(x[c] - feature_mean[i]) / feature_std[i] for the i-th numeric column c] followed "
                "by a one-hot vector per categorical column (its categories in the order listed; an unknown "
                "category is all zeros), i.e. the columns of feature_names in order; float32"
            ),
        }
        layout = "NF"
    return {
        "format": format,
        "file": path.name,
        "exporter": exporter,
        "task": model.kind,
        "task_class": model.task_class,
        "checkpoint": str(model.path),
        "lit_vision_version": lit_vision.__version__,
        "input": {"name": "input", "shape": ["batch", *shape], "dtype": "float32", "layout": layout},
        "preprocessing": preprocessing,
        "output": {"name": "output", **output_meaning(model, output_shape)},
        "data_info": json.loads(json.dumps(info.to_dict(), default=str)),
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
