"""The vs-plain-loop harness of the benchmark suite and the real-data cases built on it. No timing is
asserted (that is `make bench`'s job): only that both sides run, measure and report what the rows say."""

from __future__ import annotations

import importlib
import json
import statistics

import pytest
import torch

from bench.paths import DATA_ENV
from bench.plain_loop import PlainLoop, Splits
from bench.vs_plain import ROWS, Comparison, PlainSpec, compare, comparison_rows
from tests.fakes import make_fashion_mnist, make_image_folder

REAL_CASES = ("fashion_mnist", "cifar10_photos", "fashion_mnist_time_to_accuracy")


def _digits_loop() -> PlainSpec:
    from bench.time_to_accuracy import digits_splits, tutorial_cnn_loop

    return tutorial_cnn_loop(digits_splits, 8)


def test_harness_runs_both_sides_and_reports_every_kind_of_row(tmp_path):
    """The default experiment against the tutorials' loop: 2 epochs, the overhead run, probes."""
    spec = Comparison(
        case="harness",
        setting="digits",
        overrides=("logger=none", "trainer.enable_model_summary=false"),
        plain=_digits_loop(),
        epochs=2,
        rows=tuple(ROWS),
        overhead=True,
        target=0.2,
        probe_every=5,
    )
    runs = compare(spec, tmp_path)
    assert set(runs) == {"plain", "defaults", "plain settings"}
    for name, measured in runs.items():
        assert len(measured.epochs) == 2 and all(s > 0 for s in measured.epochs), name
        assert 0.0 <= measured.test_acc <= 1.0 and measured.train_images_per_s > 0, name
        assert measured.probes and measured.probes[0][1] == 5  # the first probe after 5 steps
    assert runs["plain settings"].precision == "32-true" and runs["plain"].precision == "32-true"
    assert runs["defaults"].startup is not None and runs["defaults"].startup > 0

    rows = comparison_rows(spec, runs)
    assert [r["metric"] for r in rows] == [
        "test accuracy",
        "wall s (whole run)",
        "epoch s (median of epochs 2..)",
        "epoch s (median of epochs 2..)",
        "train images/s",
        "data wait share of train time",
        "seconds to 20% test accuracy",
    ]
    assert all(r["case"] == "harness" and r["setting"].startswith("digits") for r in rows)
    assert "framework overhead" in rows[3]["setting"] and "tutorial loop (NCHW fp32)" in rows[2]["setting"]
    for row in rows:
        assert row["value"] is not None and row["baseline"] is not None, row
        if row["metric"] != "data wait share of train time":
            # ratio of the unrounded figures, the figures rounded to 4 decimals: allow what that rounding
            # can move a ratio of small figures (0.0109 / 0.0060 s epochs), plus the ratio's own rounding
            value, baseline = row["value"], row["baseline"]
            rounding = abs(value / baseline) * (0.5e-4 / abs(value) + 0.5e-4 / abs(baseline))
            assert row["ratio"] == pytest.approx(value / baseline, abs=rounding + 1e-3), row
    assert rows[0]["value"] == round(runs["defaults"].test_acc, 4)
    assert "lit_vision: step " in rows[-1]["note"] and "plain: step " in rows[-1]["note"]


def test_time_to_accuracy_row_says_when_a_side_never_reaches_the_target(tmp_path):
    spec = Comparison(
        "tta", "digits", ("logger=none",), _digits_loop(), 1, ("time_to_accuracy",), target=1.01
    )
    rows = comparison_rows(spec, compare(spec, tmp_path))
    assert rows[0]["value"] is None and rows[0]["baseline"] is None and rows[0]["ratio"] is None
    assert "lit_vision: not reached in 1 epochs" in rows[0]["note"]
    assert "plain: not reached in 1 epochs" in rows[0]["note"]


def test_plain_spec_names_its_settings():
    loop = _digits_loop()
    assert loop.label == "tutorial loop (NCHW fp32)"
    best = PlainSpec(loop.read, loop.net, loop.optimizer, 64, channels_last=True, bf16=True)
    assert best.label == "best plain loop (in-memory slicing, channels_last, bf16 autocast)"
    assert PlainSpec(loop.read, loop.net, loop.optimizer, 64, channels_last=True).label.endswith("fp32)")


def test_plain_loop_bf16_autocast_fixed_normalisation_and_training_rate(tmp_path):
    labels = torch.arange(40) % 2
    images = (labels.view(-1, 1, 1, 1) * 200 + torch.randint(0, 40, (40, 1, 8, 8))).byte()
    splits = Splits(images, labels, images[:8], labels[:8], images[:8], labels[:8])
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(144, 2))
    loop = PlainLoop(
        net, torch.optim.Adam(net.parameters(), 1e-2), splits, 8, bf16=True, mean_std=([0.5], [0.25])
    )
    assert loop.mean.flatten().tolist() == [0.5] and loop.std.flatten().tolist() == [0.25]
    assert loop.prepare(torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)).flatten().tolist() == [2.0] * 4
    with loop.autocast():
        assert net(loop.prepare(images[:2])).dtype == torch.bfloat16
    result = loop.fit(epochs=3, checkpoint=tmp_path / "best.pt")
    assert result.train_images == 40 and len(result.train_epochs) == 3
    assert all(t <= e for t, e in zip(result.train_epochs, result.epochs, strict=True))  # no validation in it
    assert result.train_images_per_s == pytest.approx(40 / statistics.median(result.train_epochs[1:]))


# ----------------------------------------------------------------------------- the real-data cases
@pytest.mark.parametrize("case", REAL_CASES)
def test_real_data_case_without_its_data_writes_a_not_run_row(tmp_path, monkeypatch, case):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "nothing here"))
    rows = importlib.import_module(f"bench.{case}").run(quick=True)
    assert len(rows) == 1 and rows[0]["case"] == case and rows[0]["metric"] == "not run"
    assert rows[0]["value"] is None and str(tmp_path / "nothing here") in rows[0]["note"]
    assert "--data" in rows[0]["note"]


def test_bench_data_flag_points_the_cases_at_another_folder(tmp_path, monkeypatch):
    from bench import __main__ as runner

    monkeypatch.setenv(DATA_ENV, "")  # restored after the test; main() sets it from --data
    out = tmp_path / "out"
    assert (
        runner.main(["--quick", "--case", "fashion_mnist", "--out", str(out), "--data", str(tmp_path)]) == 0
    )
    row = json.loads((out / "results.json").read_text())["cases"]["fashion_mnist"]["rows"][0]
    assert (
        row["metric"] == "not run"
        and f"FashionMNIST/raw with the four IDX files not found in {tmp_path} " in row["note"]
    )


def _generated_real_layouts(root):
    make_fashion_mnist(root, n_train=160, n_test=40)
    classes = tuple(f"class{i}" for i in range(10))
    make_image_folder(
        root / "cifar10_jpeg" / "train", classes=classes, per_class=8, size=(32, 32), formats=("jpg",)
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "metrics"),
    [
        (
            "fashion_mnist",
            [
                "test accuracy",
                "train images/s",
                "epoch s (one epoch, warm-up included)",
                "wall s (whole run)",
            ],
        ),
        (
            "cifar10_photos",
            [
                "test accuracy",
                "train images/s",
                "epoch s (median of epochs 2..)",
                "wall s (whole run)",
                "data wait share of train time",
            ],
        ),
        (
            "fashion_mnist_time_to_accuracy",
            ["seconds to 60% test accuracy", "epoch s (median of epochs 2..)", "test accuracy"],
        ),
    ],
)
def test_real_data_case_runs_quick_on_files_in_the_real_layout(tmp_path, monkeypatch, case, metrics):
    _generated_real_layouts(tmp_path / "data")
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    rows = importlib.import_module(f"bench.{case}").run(quick=True)
    assert [r["metric"] for r in rows] == metrics
    for row in rows:
        assert row["case"] == case and "--quick" in row["setting"]
        if not row["metric"].startswith("seconds to"):  # the fake classes may not reach the target
            assert row["value"] is not None and row["baseline"] is not None, row


def test_gpu_script_dry_run_checks_the_wiring_on_any_machine(tmp_path):
    import json

    from bench.gpu import DDP_CASE, GPU_CASES, main

    assert main(["--dry-run", "--out", str(tmp_path)]) == 0
    cases = json.loads((tmp_path / "results.json").read_text())["cases"]
    assert set(cases) == {*GPU_CASES, DDP_CASE}
    ddp = cases[DDP_CASE]["rows"][0]
    assert ddp["metric"] == "planned" and "ddp" in ddp["note"] and "2 devices" in ddp["note"]
    assert "planned" in (tmp_path / "results.md").read_text()
