"""Trust and output safety (issue #17): checkpoints never run code unless trusted, export never overwrites its
checkpoint, predict never reads its own outputs and replaces its output folder as one unit, and path mistakes
are answered before torch is imported."""

from __future__ import annotations

import fractions
import os
import re
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from lit_vision.callbacks.best_checkpoint import point_to
from lit_vision.errors import UserError
from lit_vision.inference.api import predict
from lit_vision.inference.export import export_model
from lit_vision.inference.trust import UntrustedCheckpointError
from lit_vision.runs.run import train
from tests.fakes import save_image, write_garbage_image
from tests.helpers import ROOT, compose_cfg, without_hydra

CHEAP_RUN = [
    "logger=none",
    "callbacks=[model_checkpoint]",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
]


def digits_checkpoint(path: Path) -> Path:
    """An untrained checkpoint of the default digits CNN (1 channel, 8x8), as train.py would write it."""
    cfg = compose_cfg([])
    task = instantiate(cfg.model)
    task.data_info = {
        "num_classes": 10,
        "in_channels": 1,
        "image_size": 8,
        "mean": [0.5],
        "std": [0.25],
        "class_names": list("0123456789"),
    }
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(task)
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(path)
    return path


class WritesMarker:
    """Unpickled, it runs code: ``exec`` writes ``marker`` (what an attacker's shell command would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def with_extra(source: Path, target: Path, **extra) -> Path:
    """A copy of the checkpoint ``source`` with extra top-level entries."""
    checkpoint = torch.load(source, weights_only=True)
    checkpoint.update(extra)
    torch.save(checkpoint, target)
    return target


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return digits_checkpoint(tmp_path_factory.mktemp("ckpt") / "digits.ckpt")


@pytest.fixture
def evil(ckpt, tmp_path) -> tuple[Path, Path]:
    """``(checkpoint, marker)``: a working checkpoint plus an object whose unpickling writes ``marker``."""
    marker = tmp_path / "MARKER"
    return with_extra(ckpt, tmp_path / "evil.ckpt", payload=WritesMarker(marker)), marker


def digit_images(folder: Path, count: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        save_image(folder / f"{i}.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    return folder


def assert_refused(exc_info, marker: Path) -> None:
    text = str(exc_info.value)
    assert "builtins.exec" in text and "trust_checkpoint=true" in text, text
    assert not marker.exists(), "the checkpoint's code ran"


# ------------------------------------------------------------------------------- 1. checkpoints never run code
def test_a_malicious_checkpoint_runs_no_code_in_train_evaluate_predict_export(evil, tmp_path):
    path, marker = evil
    resume = compose_cfg([f"ckpt_path={path}", *CHEAP_RUN], output_dir=tmp_path / "resume")
    with pytest.raises(UserError) as refused:
        train(without_hydra(resume))
    assert_refused(refused, marker)
    evaluate = compose_cfg(["train=false", f"ckpt_path={path}", *CHEAP_RUN], output_dir=tmp_path / "eval")
    with pytest.raises(UserError) as refused:
        train(without_hydra(evaluate))
    assert_refused(refused, marker)
    with pytest.raises(UntrustedCheckpointError) as refused:
        predict(path, digit_images(tmp_path / "in"), tmp_path / "out")
    assert_refused(refused, marker)
    assert not (tmp_path / "out").exists()
    with pytest.raises(UntrustedCheckpointError) as refused:
        export_model(path, "torchscript", tmp_path / "net.pt")
    assert_refused(refused, marker)
    assert not (tmp_path / "net.pt").exists()


def test_a_malicious_checkpoint_in_the_legacy_format_is_refused_too(ckpt, tmp_path):
    marker = tmp_path / "MARKER"
    checkpoint = torch.load(ckpt, weights_only=True) | {"payload": WritesMarker(marker)}
    torch.save(checkpoint, tmp_path / "legacy.ckpt", _use_new_zipfile_serialization=False)
    with pytest.raises(UntrustedCheckpointError, match=r"refers to (builtins\.)?exec.*trust_checkpoint=true"):
        export_model(tmp_path / "legacy.ckpt", "torchscript", tmp_path / "net.pt")
    assert not marker.exists()


def test_lightning_resume_loads_with_weights_only(evil, tmp_path, monkeypatch):
    """Even past lit_vision's own check, trainer.fit(ckpt_path=...) is asked for weights_only=True."""
    path, marker = evil
    monkeypatch.setattr("lit_vision.runs.run.check_checkpoint_matches", lambda *args: None)
    resume = compose_cfg([f"ckpt_path={path}", *CHEAP_RUN], output_dir=tmp_path / "resume")
    with pytest.raises(Exception, match="Weights only load failed"):
        train(without_hydra(resume))
    assert not marker.exists()


def test_the_command_lines_name_the_type_and_the_opt_in(evil, tmp_path):
    path, marker = evil
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LIT_VISION_PROGRESS": "0", "LIT_VISION_ROOT": str(ROOT)}
    env.pop("HYDRA_FULL_ERROR", None)
    command = [
        sys.executable,
        "-m",
        "lit_vision.cli.predict",
        f"ckpt={path}",
        f"input={digit_images(tmp_path)}",
    ]
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "refers to builtins.exec" in message and "trust_checkpoint=true" in message
    assert not marker.exists()


def test_targets_in_the_hyperparameters_must_be_lit_vision_or_torch_classes(ckpt, tmp_path):
    marker = tmp_path / "MARKER"
    checkpoint = torch.load(ckpt, weights_only=True)
    net = checkpoint["hyper_parameters"]["net"]
    # plain data (weights_only loads it), but rebuilding the net would call a function that writes a file
    net["activation"] = {"_target_": "lit_vision.utils.io.atomic_write_text", "_args_": [str(marker), "ran"]}
    torch.save(checkpoint, tmp_path / "target.ckpt")
    with pytest.raises(
        UntrustedCheckpointError, match=r"hparams\.net\.activation\._target_=lit_vision\.utils"
    ):
        predict(tmp_path / "target.ckpt", digit_images(tmp_path / "in"), tmp_path / "out")
    checkpoint["hyper_parameters"]["net"] = net | {"activation": None}
    checkpoint["task_class"] = "subprocess.Popen"
    torch.save(checkpoint, tmp_path / "task.ckpt")
    with pytest.raises(
        UntrustedCheckpointError, match=r"subprocess\.Popen as its task class.*trust_checkpoint"
    ):
        export_model(tmp_path / "task.ckpt", "torchscript", tmp_path / "net.pt")
    assert not marker.exists()


def test_trust_checkpoint_loads_a_legit_but_unusual_checkpoint(ckpt, tmp_path):
    unusual = with_extra(ckpt, tmp_path / "unusual.ckpt", note=fractions.Fraction(1, 3))
    images = digit_images(tmp_path / "in")
    with pytest.raises(UntrustedCheckpointError, match=r"fractions\.Fraction.*trust_checkpoint=true"):
        predict(unusual, images, tmp_path / "out")
    assert predict(unusual, images, tmp_path / "out", trust_checkpoint=True)["count"] == 3
    result = export_model(unusual, "torchscript", tmp_path / "net.pt", trust_checkpoint=True)
    assert result.path.is_file()
    evaluate = compose_cfg(
        ["train=false", f"ckpt_path={unusual}", "trust_checkpoint=true", *CHEAP_RUN],
        output_dir=tmp_path / "e",
    )
    metrics, _ = train(without_hydra(evaluate))
    assert metrics["status"] == "completed" and "test/acc" in metrics
    with pytest.raises(UserError, match="trust_checkpoint='yes' must be true or false"):
        train(without_hydra(compose_cfg(["trust_checkpoint=yes"], output_dir=tmp_path / "y")))


# ------------------------------------------------------------------------------- 3. export keeps its checkpoint
def test_export_never_overwrites_the_checkpoint_it_reads(ckpt, tmp_path, monkeypatch):
    model = tmp_path / "model.pt"
    model.write_bytes(ckpt.read_bytes())
    before = model.read_bytes()
    (tmp_path / "sub").mkdir()
    os.symlink(model, tmp_path / "link.pt")
    for out in (None, model, tmp_path / "sub" / ".." / "model.pt", tmp_path / "link.pt"):
        with pytest.raises(UserError, match="would overwrite the checkpoint"):
            export_model(model, "torchscript", out)
    monkeypatch.chdir(tmp_path)  # a relative spelling of the same file
    with pytest.raises(UserError, match="would overwrite the checkpoint"):
        export_model("model.pt", "torchscript", "./model.pt")
    assert model.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.pt", "model.pt", "sub"]


# ------------------------------------------------------------------------------- 4. and 5. predict's outputs
def test_predict_never_reads_its_own_outputs(ckpt, tmp_path, monkeypatch):
    digit_images(tmp_path, 3)
    monkeypatch.chdir(tmp_path)
    counts = [predict(ckpt, ".", "predictions")["count"] for _ in range(3)]
    assert counts == [3, 3, 3]
    assert len((tmp_path / "predictions" / "predictions.csv").read_text().splitlines()) == 4


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_refused_or_failing_run_leaves_the_earlier_predictions_intact(ckpt, tmp_path):
    images = digit_images(tmp_path / "in", 4)
    out = tmp_path / "out"
    predict(ckpt, images, out)
    before = _snapshot(out)
    with pytest.raises(UserError, match="on_bad_image must be error or skip"):
        predict(ckpt, images, out, on_bad_image="ignore")  # refused up front
    assert _snapshot(out) == before
    write_garbage_image(images / "9_broken.png")  # sorted last: the run fails after writing 4 rows
    with pytest.raises(UserError, match="9_broken"):
        predict(ckpt, images, out, batch_size=1)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]  # no staging folder left behind


def test_a_new_run_replaces_the_whole_output_folder(ckpt, tmp_path):
    images = digit_images(tmp_path / "in", 2)
    out = tmp_path / "out"
    predict(ckpt, images, out, grid=16)
    assert (out / "predictions_grid.png").is_file()
    summary = predict(ckpt, images, out, grid=0)
    assert sorted(p.name for p in out.iterdir()) == ["predict.json", "predictions.csv"]  # no stale grid
    assert summary["outputs"]["csv"] == str(out / "predictions.csv")


def test_predict_refuses_an_output_folder_it_must_not_replace(ckpt, tmp_path):
    images = digit_images(tmp_path / "in", 2)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match=r"out=.*mine already holds files that are not an earlier prediction"):
        predict(ckpt, images, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(UserError, match=r"lies inside out=.*would be overwritten"):
        predict(ckpt, images, tmp_path)
    with pytest.raises(UserError, match="lies inside out="):
        predict(ckpt, images, images)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        predict(ckpt, images, tmp_path / "file")
    assert sorted(p.name for p in images.iterdir()) == ["0.png", "1.png"]


# ------------------------------------------------------------------------------- 10. answers before torch
@pytest.mark.parametrize(
    "command",
    [
        [str(ROOT / "train.py"), "ckpt_path=missing.ckpt", "hydra.run.dir=run"],
        ["-m", "lit_vision.cli.evaluate", "ckpt=missing.ckpt", "hydra.run.dir=run"],
        ["-m", "lit_vision.cli.predict", "ckpt=missing.ckpt", "input=."],
        ["-m", "lit_vision.cli.export", "ckpt=missing.ckpt"],
    ],
    ids=["train", "evaluate", "predict", "export"],
)
def test_a_missing_checkpoint_is_answered_before_torch_is_imported(command, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LIT_VISION_ROOT": str(ROOT)}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert re.search(r"ckpt(_path)?=missing\.ckpt: no such checkpoint file", " ".join(proc.stderr.split()))
    # -X importtime lists every module imported, in order, up to the exit
    imported = re.findall(r"^import time:.*\|\s*([\w.]+)$", proc.stderr, re.MULTILINE)
    assert "lit_vision" in imported and not {"torch", "lightning"} & set(imported)


def test_best_ckpt_link_is_replaced_in_one_step(tmp_path):
    first, second = tmp_path / "epoch000.ckpt", tmp_path / "epoch001.ckpt"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    link = tmp_path / "best.ckpt"
    point_to(link, first)
    point_to(link, second)
    assert os.readlink(link) == "epoch001.ckpt" and link.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "epoch000.ckpt", "epoch001.ckpt"]
