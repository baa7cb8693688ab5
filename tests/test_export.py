"""Exporting checkpoints: ONNX (classifier and UNet) and TorchScript agree with PyTorch below 1e-4 at a batch
size other than the traced one, the sidecar documents preprocessing and outputs, a failed check is loud."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import onnxruntime
import pytest
import torch

from lit_vision.cli.export import main as export_main
from lit_vision.inference import export as export_module
from lit_vision.inference.api import predict
from lit_vision.inference.export import ExportCheckFailed, export_model
from lit_vision.inference.inputs import find_images
from lit_vision.inference.preprocess import ImagePreprocessor
from tests.test_inference import (  # noqa: F401 - module-scoped checkpoints
    FLOWERS,
    classifier,
    segmenter,
    tabular_regressor,
    write_table,
)


def test_onnx_classifier_agrees_with_pytorch_and_with_predict(classifier, tmp_path):  # noqa: F811
    ckpt, root, _ = classifier
    result = export_model(ckpt, "onnx", tmp_path / "flowers.onnx")
    assert result.max_abs_diff < 1e-4 and result.path.is_file()
    assert not (tmp_path / "flowers.onnx.data").exists()  # one self-contained file
    sidecar = json.loads((tmp_path / "flowers.onnx.json").read_text())
    assert sidecar["verification"]["passed"] and sidecar["verification"]["batch_size"] == 3
    assert sidecar["input"]["shape"] == ["batch", 3, 32, 32]
    assert sidecar["output"]["class_names"] == [FLOWERS[f] for f in sorted(FLOWERS)]
    assert sidecar["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert sidecar["preprocessing"]["eval_transforms"][1] == {"CenterCrop": {"size": 32}}

    # The documented preprocessing + the ONNX file reproduce predict's probabilities (batch of 5: dynamic).
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert isinstance(session.get_inputs()[0].shape[0], str)
    images = find_images(root)[:5]
    preprocess = ImagePreprocessor(sidecar["data_info"], "classification")
    batch = preprocess.normalize(torch.stack([preprocess(i.path)[0] for i in images]))
    logits = session.run(None, {"input": batch.numpy()})[0]
    probs = torch.from_numpy(logits).softmax(dim=1)
    predict(ckpt, root, tmp_path / "pred", grid=0, top_k=1)
    with open(tmp_path / "pred" / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:5]
    for row, p in zip(rows, probs, strict=True):
        assert int(row["top1_index"]) == int(p.argmax())
        assert float(row["top1_prob"]) == pytest.approx(float(p.max()), abs=1e-4)


def test_onnx_unet_agrees_with_pytorch(segmenter, tmp_path):  # noqa: F811
    ckpt, _ = segmenter
    result = export_model(ckpt, "onnx", tmp_path / "unet.onnx")
    assert result.max_abs_diff < 1e-4
    output = result.metadata["output"]
    assert output["shape"] == ["batch", 1, 32, 32] and output["binary"] and output["threshold"] == 0.5
    assert output["class_names"] == ["background", "cat"]
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": np.zeros((4, 3, 32, 32), np.float32)})[0]
    assert out.shape == (4, 1, 32, 32)


def test_torchscript_export_from_the_command_line(classifier, tmp_path, capsys):  # noqa: F811
    ckpt, _, _ = classifier
    target = tmp_path / "model.pt"
    assert export_main([f"ckpt={ckpt}", "format=torchscript", f"out={target}"]) == 0
    printed = capsys.readouterr().out
    assert "max abs difference" in printed and str(target) in printed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still loads
        scripted = torch.jit.load(str(target))
    assert scripted(torch.randn(7, 3, 32, 32)).shape == (7, 3)
    sidecar = json.loads((tmp_path / "model.pt.json").read_text())
    assert sidecar["format"] == "torchscript" and sidecar["verification"]["max_abs_diff"] < 1e-4


def test_a_failed_check_is_reported_and_recorded(classifier, tmp_path, monkeypatch, capsys):  # noqa: F811
    ckpt, _, _ = classifier
    real = export_module.run_torchscript
    monkeypatch.setattr(export_module, "run_torchscript", lambda path, x: real(path, x) + 1e-3)
    with pytest.raises(ExportCheckFailed, match="differs from PyTorch"):
        export_model(ckpt, "torchscript", tmp_path / "m.pt")
    assert json.loads((tmp_path / "m.pt.json").read_text())["verification"]["passed"] is False
    assert export_main([f"ckpt={ckpt}", "format=torchscript", f"out={tmp_path / 'n.pt'}"]) == 1
    assert "FAILED" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export_main([f"ckpt={ckpt}", "format=tflite"])


def test_tabular_regressor_exports_in_target_units(tabular_regressor, tmp_path):  # noqa: F811
    import pandas as pd

    result = export_model(tabular_regressor, "onnx", tmp_path / "reg.onnx", exporter="legacy")
    assert result.max_abs_diff < 1e-4 and "legacy" in result.metadata["exporter"]
    sidecar = result.metadata
    assert sidecar["input"]["shape"] == ["batch", 5] and sidecar["input"]["layout"] == "NF"
    assert sidecar["preprocessing"]["feature_names"] == ["x1", "x2", "city=Lima", "city=Oslo", "city=Pune"]
    assert sidecar["output"]["target_names"] == ["y"] and sidecar["output"]["target_std"] is not None
    # rows prepared by the sidecar's recipe, run by onnxruntime == predict's values (target units)
    table = write_table(tmp_path / "rows.csv", 6, seed=3)
    frame = pd.read_csv(table)
    prep = sidecar["preprocessing"]
    numeric = (frame[prep["numeric_columns"]].to_numpy() - prep["feature_mean"]) / prep["feature_std"]
    one_hot = np.stack([(frame["city"] == c).to_numpy() for c in prep["categorical"]["city"]], axis=1)
    rows = np.concatenate([numeric, one_hot], axis=1).astype(np.float32)
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    values = session.run(None, {"input": rows})[0][:, 0]
    predict(tabular_regressor, table, tmp_path / "pred")
    expected = pd.read_csv(tmp_path / "pred" / "predictions.csv")["prediction"].to_numpy()
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-4)
