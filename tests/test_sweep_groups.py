"""Statistics in the sweep summary (issue #19.2): jobs that differ only in ``seed`` / ``data.fold`` are
grouped with mean ± std and n, and each group is marked within noise of the best or not."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from lit_vision.errors import UserError
from lit_vision.runs.hydra_callbacks import SweepSummary
from lit_vision.runs.sweep_groups import BEST, FEW, TIE, WORSE
from lit_vision.runs.sweep_summary import (
    SUMMARY_GROUPS_CSV,
    SUMMARY_GROUPS_PNG,
    collect_jobs,
    sweep_groups,
    write_summary,
)
from tests.helpers import run_train_py
from tests.test_sweeps import FAST_JOB, fake_job

BASE = {"optimized_metric": "val/acc", "optimized_mode": "max", "status": "completed"}


def write_sweep(tmp_path, results: dict[str, list[float | None]], key: str = "data.fold", base=BASE) -> None:
    """One job per (recipe, replicate): ``results[recipe][i]`` is replicate i's value (None: failed)."""
    num = 0
    for recipe, values in results.items():
        for i, value in enumerate(values):
            overrides = [f"optim={recipe}", f"{key}={i}", "data.num_folds=5"]
            if value is None:
                metrics = {**base, "status": "failed", "error": "boom"}
            else:
                metrics = {**base, "optimized_value": value, "test/acc": value - 0.1}
            fake_job(tmp_path, num, overrides, metrics)
            num += 1


def by_label(groups):
    return {g.label: g for g in groups}


def test_groups_have_the_mean_std_and_n_of_their_completed_runs(tmp_path):
    write_sweep(tmp_path, {"adam": [0.8, 0.9, 0.7, None], "sgd": [0.5, 0.6, 0.55, 0.65]})
    write_summary(tmp_path)
    groups = by_label(sweep_groups(collect_jobs(tmp_path)))
    assert set(groups) == {"optim=adam", "optim=sgd"}
    mean, std, n = groups["optim=adam"].stats()
    assert (n, groups["optim=adam"].failed) == (3, 1)  # the failed job is not a run of the mean
    assert mean == pytest.approx(0.8) and std == pytest.approx(0.1)  # sample std (ddof=1)
    mean, std, n = groups["optim=sgd"].stats()
    assert (
        n == 4
        and mean == pytest.approx(0.575)
        and std == pytest.approx(np.std([0.5, 0.6, 0.55, 0.65], ddof=1))
    )
    assert groups["optim=sgd"].stats("test/acc")[0] == pytest.approx(0.475)

    rows = list(csv.DictReader((tmp_path / SUMMARY_GROUPS_CSV).open()))
    assert [r["group"] for r in rows] == ["optim=adam", "optim=sgd"]  # best mean first
    assert float(rows[0]["val/acc_mean"]) == pytest.approx(0.8) and float(
        rows[0]["val/acc_std"]
    ) == pytest.approx(0.1)
    assert (rows[0]["n"], rows[0]["failed"], rows[1]["n"]) == ("3", "1", "4")
    assert float(rows[1]["test/acc_mean"]) == pytest.approx(0.475)
    jobs = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert all(r["group"] == "optim=sgd" and r["group_n"] == "4" for r in jobs if r["optim"] == "sgd")
    markdown = (tmp_path / "summary.md").read_text()
    assert "| optim=adam | 3 (1 failed) | 0.8 ± 0.1 | best |" in markdown
    assert "two-sided t-test at level 0.05" in markdown
    assert markdown.index("## Groups") < markdown.index("## Jobs")


def test_clear_difference_is_worse_and_unclear_one_is_within_noise_paired(tmp_path):
    best, close, bad = (
        [0.90, 0.86, 0.93, 0.88, 0.91],
        [0.89, 0.85, 0.92, 0.89, 0.90],
        [0.60, 0.58, 0.63, 0.61, 0.59],
    )
    write_sweep(tmp_path, {"adam": best, "sgd": close, "rmsprop": bad})
    write_summary(tmp_path)
    groups = sweep_groups(collect_jobs(tmp_path))
    assert [g.label for g in groups] == ["optim=adam", "optim=sgd", "optim=rmsprop"]
    adam, sgd, rmsprop = groups
    assert adam.verdict == BEST
    # the same five folds in every group: a paired t-test on the per-fold differences
    assert sgd.test == rmsprop.test == "paired t"
    assert sgd.verdict == TIE and sgd.p_value == pytest.approx(stats.ttest_rel(close, best).pvalue)
    assert 0.05 < sgd.p_value < 0.5  # a clear-looking but noisy 0.006 gap
    assert rmsprop.verdict == WORSE and rmsprop.p_value < 1e-4
    markdown = (tmp_path / "summary.md").read_text()
    assert "Within noise of the best (`optim=adam`) at level 0.05: `optim=sgd`." in markdown
    assert "| optim=rmsprop | 5 | 0.602 ± 0.019 | worse (p=" in markdown


def test_welch_when_the_replicates_differ_and_min_mode(tmp_path):
    base = {**BASE, "optimized_metric": "val/mae", "optimized_mode": "min"}
    num = 0
    for recipe, values, seeds in (
        ("a", [1.0, 1.2, 1.1], (0, 1, 2)),
        ("b", [1.05, 1.3, 1.0, 1.25], (3, 4, 5, 6)),
    ):
        for seed, value in zip(seeds, values, strict=True):
            fake_job(tmp_path, num, [f"model={recipe}", f"seed={seed}"], {**base, "optimized_value": value})
            num += 1
    a, b = sweep_groups(collect_jobs(tmp_path))
    assert a.label == "model=a" and a.verdict == BEST  # lower MAE is better
    assert b.test == "Welch t" and b.verdict == TIE
    assert b.p_value == pytest.approx(
        stats.ttest_ind([1.05, 1.3, 1.0, 1.25], [1.0, 1.2, 1.1], equal_var=False).pvalue
    )
    write_summary(tmp_path, alpha=0.999)  # at a (silly) level of 0.999 the same data say "worse"
    assert "| model=b | 4 | 1.15 ± 0.15 | worse (p=" in (tmp_path / "summary.md").read_text()


def test_identical_runs_and_single_runs(tmp_path):
    write_sweep(tmp_path, {"a": [0.5, 0.5], "b": [0.5, 0.5], "c": [0.7]})
    groups = by_label(sweep_groups(collect_jobs(tmp_path)))
    assert groups["optim=c"].verdict == BEST and math.isnan(groups["optim=c"].stats()[1])
    assert groups["optim=a"].verdict == groups["optim=b"].verdict == FEW  # the best has one run: no test
    write_sweep(tmp_path / "same", {"a": [0.5, 0.5], "b": [0.5, 0.5]})
    _, b = sweep_groups(collect_jobs(tmp_path / "same"))
    assert b.verdict == TIE and b.p_value == 1.0  # no spread at all: equal, not NaN


def test_png_of_the_groups(tmp_path):
    write_sweep(tmp_path, {"adam": [0.8, 0.9, 0.7], "sgd": [0.5, 0.6, 0.55]})
    write_summary(tmp_path)
    with Image.open(tmp_path / SUMMARY_GROUPS_PNG) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 100


def test_no_groups_when_nothing_repeats(tmp_path):
    fake_job(tmp_path, 0, ["optim.lr=0.1", "seed=1"], {**BASE, "optimized_value": 0.9})
    fake_job(tmp_path, 1, ["optim.lr=0.01", "seed=1"], {**BASE, "optimized_value": 0.8})
    write_summary(tmp_path)
    assert sweep_groups(collect_jobs(tmp_path)) == []
    assert "## Groups" not in (tmp_path / "summary.md").read_text()
    assert not (tmp_path / SUMMARY_GROUPS_PNG).exists() and not (tmp_path / SUMMARY_GROUPS_CSV).exists()
    assert "group" not in next(csv.reader((tmp_path / "summary.csv").open()))


@pytest.mark.slow
def test_cross_validation_sweep_end_to_end(tmp_path):
    """`train.py -m data.fold=0,1,2 data.num_folds=3` on a table: three folds, one group in the summary."""
    sweep = tmp_path / "sweep"
    proc = run_train_py(
        [
            "-m",
            "experiment=linear_toy",
            "data.fold=0,1,2",
            "data.num_folds=3",
            "trainer.check_val_every_n_epoch=1",
            *FAST_JOB,
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((sweep / SUMMARY_GROUPS_CSV).open()))
    assert len(rows) == 1 and rows[0]["n"] == "3" and rows[0]["group"] == "all jobs"
    assert (sweep / SUMMARY_GROUPS_PNG).is_file()
    assert "Groups over seeds / folds" in proc.stdout


def test_sweep_summary_callback_checks_its_level():
    assert SweepSummary(alpha=0.01).alpha == 0.01
    with pytest.raises(UserError, match=r"hydra\.callbacks\.sweep_summary\.alpha=5 must be a test level"):
        SweepSummary(alpha=5)
