"""What a user reads (issue 17, points 13 and 14): one line per epoch in train.log and on redirected stdout,
a short start instead of the whole config tree, and --help texts that describe the options in words."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lit_vision.callbacks.epoch_log import EpochLog, format_metrics
from lit_vision.config.presentation import describe_options
from lit_vision.runs.run import train
from tests.helpers import CONF_DIR, ROOT, compose_cfg, run_train_py, without_hydra

TINY = [
    "trainer.max_epochs=2",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "logger=none",
]
EPOCH_LINE = re.compile(r"^epoch (\d)/2  train/loss \S+ .*val/loss \S+ .*val/acc \S+ .*\d+\.\ds$")


@pytest.fixture(scope="module")
def redirected_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """``train.py`` with its output captured (not a terminal), as on a cluster or under nohup."""
    run_dir = tmp_path_factory.mktemp("redirected") / "run"
    proc = run_train_py([*TINY, f"hydra.run.dir={run_dir}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, run_dir


def log_messages(run_dir: Path) -> list[str]:
    """The messages of train.log without the time/logger prefix."""
    lines = (run_dir / "train.log").read_text().splitlines()
    return [re.sub(r"^\[[^]]*\]\[[^]]*\]\[[A-Z]+\] (- )?", "", line) for line in lines]


def test_train_log_has_one_line_per_epoch_then_the_best_checkpoint_and_the_test(redirected_run):
    _, run_dir = redirected_run
    messages = log_messages(run_dir)
    epochs = [m for m in messages if m.startswith("epoch ")]
    assert [EPOCH_LINE.match(m).group(1) for m in epochs] == ["1", "2"], epochs
    best = [m for m in messages if m.startswith("best checkpoint: ")]
    assert len(best) == 1
    path = Path(best[0].removeprefix("best checkpoint: ").split(" (")[0])
    assert path.is_file() and path.parent == run_dir / "checkpoints"
    tests = [m for m in messages if m.startswith("test  ")]
    assert len(tests) == 1 and "test/loss" in tests[0] and "test/acc" in tests[0]
    assert messages.index(best[0]) > messages.index(epochs[-1]) and messages.index(tests[0]) > messages.index(
        best[0]
    )


def test_redirected_stdout_gets_the_same_lines_and_no_config_tree(redirected_run):
    proc, run_dir = redirected_run
    out = proc.stdout.splitlines()
    assert sum(1 for line in out if EPOCH_LINE.match(line)) == 2
    assert any(line.startswith("best checkpoint: ") for line in out)
    assert any(line.startswith("test  test/loss") for line in out)
    # the start: the overrides and where the resolved config is, not its 500 lines
    assert "_target_: lit_vision.data.digits.DigitsDataModule" not in proc.stdout
    assert f"Resolved config: {run_dir / 'config.yaml'}" in proc.stdout
    assert "Overrides: trainer.max_epochs=2" in proc.stdout
    assert (run_dir / "config.yaml").is_file()


def test_print_config_true_prints_the_whole_tree(tmp_path, capsys):
    cfg = compose_cfg([*TINY, "print_config=true", "trainer.max_epochs=1", "test=false"], output_dir=tmp_path)
    train(without_hydra(cfg))
    out = capsys.readouterr().out
    assert "lit_vision.data.digits.DigitsDataModule" in out and "max_epochs: 1" in out


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train/loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.layer(batch[0]).pow(2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "to_stream", "printed"),
    [
        (io.StringIO, "auto", True),
        (_Terminal, "auto", False),
        (_Terminal, True, True),
        (io.StringIO, False, False),
    ],
)
def test_epoch_lines_reach_stdout_only_when_it_is_not_a_terminal(tmp_path, stream, to_stream, printed):
    out = stream()
    loader = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)
    trainer = L.Trainer(
        max_epochs=2,
        callbacks=[EpochLog(to_stream=to_stream, stream=out)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        accelerator="cpu",
    )
    trainer.fit(_Tiny(), loader, loader)
    lines = out.getvalue().splitlines()
    if printed:
        assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
        assert all("train/loss" in line and "val/loss" in line for line in lines)
    else:
        assert lines == []


def test_format_metrics_puts_the_loss_first_and_leaves_out_steps_and_per_class_values():
    metrics = {
        "val/acc": 0.5,
        "val/loss": 1.25,
        "val/acc_class/3": 0.1,
        "train/loss_step": 2.0,
        "train/loss_epoch": 1.5,
    }
    assert format_metrics(metrics, ("train/", "val/")) == "train/loss 1.5  val/loss 1.25  val/acc 0.5"
    both = {"train/loss": 1.5, "train/loss_epoch": 1.5, "train/iou": 0.25}
    assert format_metrics(both, ("train/",)) == "train/loss 1.5  train/iou 0.25"


# ------------------------------------------------------------------------------------------- --help
def test_train_help_describes_every_group_option_and_hides_the_schema():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert len(text.splitlines()) < 100
    assert "schema" not in text and "Compose your configuration" not in text
    groups = [
        "data",
        "model",
        "optim",
        "scheduler",
        "trainer",
        "callbacks",
        "logger",
        "paths",
        "experiment",
        "debug",
        "hparams_search",
        "tune",
    ]
    for group in groups:
        assert re.search(rf"^  {group}\s+\S", text, re.MULTILINE), group
        for option in sorted((CONF_DIR / group).glob("*.yaml")):
            if group == "callbacks" and option.stem in ("default", "all", "none"):
                continue
            assert re.search(rf"\b{option.stem}\b", text), f"{group}={option.stem} is not in --help"
    assert "print_config=false" in text


def test_predict_and_export_help_describe_their_options(capsys):
    from lit_vision.cli import export, predict

    assert predict.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  ckpt=\.\.\.\s+\(required\) a lit_vision checkpoint", out, re.MULTILINE)
    assert re.search(r"^  batch_size=64\s+images per forward pass", out, re.MULTILINE)
    assert re.search(r"^  trainer\.\*\s+any Lightning Trainer argument", out, re.MULTILINE)
    assert "defaults:" not in out
    assert export.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  format=onnx\s+onnx \| torchscript", out, re.MULTILINE)


def test_evaluate_help_is_its_own(monkeypatch, capsys):
    from lit_vision.cli import evaluate

    monkeypatch.setattr(sys, "argv", ["lit-evaluate", "--help"])
    with pytest.raises(SystemExit) as info:
        evaluate.main()
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "Evaluate a checkpoint" in out and re.search(r"^  ckpt=\.\.\.\s+\(required\)", out, re.MULTILINE)
    assert "Train and test a model" not in out


def test_describe_options_reads_trailing_and_continued_comments():
    text = "defaults:\n  - trainer: default\n  - _self_\n\nckpt: ???   # the file\nn: 3        # how many,\n            # at most\ntrainer:\n  x: 1\n"
    lines = describe_options(text).splitlines()
    assert lines[0].split() == ["ckpt=...", "(required)", "the", "file"]
    assert lines[1].split() == ["n=3", "how", "many,", "at", "most"]
    assert lines[2].startswith("  trainer.*")
