"""Multirun sweeps: every job in its own folder, a summary table (CSV, Markdown, console) sorted by the
optimised metric with failed jobs marked, and Optuna searches that leave their best parameters."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lit_vision.runs.sweep_summary import collect_jobs, render_markdown, write_summary
from tests.helpers import CONF_DIR, compose_cfg, run_train_py

FAST_JOB = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=5",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_model_summary=false",
    "callbacks=[model_checkpoint]",
    "logger=none",
]


def fake_job(sweep: Path, num: int, overrides: list[str], metrics: dict | None) -> None:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))


def test_summary_sorts_by_the_optimised_metric_and_keeps_failed_jobs(tmp_path):
    base = {"optimized_metric": "val/mae", "optimized_mode": "min", "status": "completed"}
    fake_job(tmp_path, 0, ["optim.lr=0.1", "seed=1"], {**base, "optimized_value": 0.9, "test/mae": 1.0})
    fake_job(tmp_path, 1, ["optim.lr=0.01", "seed=1"], {**base, "optimized_value": 0.2, "test/mae": 0.3})
    fake_job(tmp_path, 2, ["optim.lr=9", "seed=1"], {**base, "status": "failed", "error": "loss became NaN"})
    fake_job(tmp_path, 3, ["optim.lr=1", "seed=1"], None)  # killed before writing anything

    write_summary(tmp_path)
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert [r["job"] for r in rows] == ["1", "0", "2", "3"]  # lower MAE first, then failures in job order
    assert [r["status"] for r in rows] == ["completed", "completed", "failed", "no metrics.json"]
    assert rows[0]["optim.lr"] == "0.01" and rows[0]["seed"] == "1" and rows[0]["val/mae"] == "0.2"
    assert rows[2]["error"] == "loss became NaN"
    markdown = (tmp_path / "summary.md").read_text()
    assert "4 jobs, 2 completed, 2 failed; sorted by `val/mae`" in markdown
    assert "Shared overrides: `seed=1`" in markdown
    assert markdown.index("| 1 | completed | 0.01 |") < markdown.index("| 0 | completed | 0.1 |")
    assert "| 2 | failed | 9 |" in markdown and "loss became NaN" in markdown
    assert render_markdown(tmp_path, collect_jobs(tmp_path)) == markdown


@pytest.mark.slow
def test_grid_sweep_runs_every_job_and_summarises_one_failure(tmp_path):
    sweep = tmp_path / "sweep"
    # SGD with lr=50 diverges (the non-finite loss guard stops that job); Adam survives it.
    # 32-true: under bf16-mixed (auto on CPUs with native bf16) SGD at lr=50 need not reach NaN in 5 steps
    args = ["-m", "optim=adam,sgd", "optim.lr=0.01,50", *FAST_JOB, "trainer.precision=32-true"]
    proc = run_train_py([*args, f"hydra.sweep.dir={sweep}"])
    assert proc.returncode == 1, proc.stderr[-3000:]  # some job failed; all ran
    assert "1 of 4 jobs failed (job 3)" in proc.stderr
    jobs = {j.name: j for j in collect_jobs(sweep)}
    assert sorted(jobs) == ["0", "1", "2", "3"]
    for name in jobs:
        assert (sweep / name / "config.yaml").is_file() and (sweep / name / "metrics.json").is_file()
    assert (jobs["3"].overrides["optim"], jobs["3"].overrides["optim.lr"]) == ("sgd", "50")
    assert jobs["3"].status == "failed" and "became NaN" in jobs["3"].error
    assert all(jobs[n].ok for n in "012")

    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    values = [float(r["val/acc"]) for r in rows if r["status"] == "completed"]
    assert values == sorted(values, reverse=True) and len(values) == 3
    assert rows[-1]["job"] == "3" and rows[-1]["status"] == "failed"
    assert "Sweep summary (4 jobs, 1 failed)" in proc.stdout
    assert "job 3 failed: The training loss became NaN" in " ".join(proc.stdout.split())


@pytest.mark.slow
def test_optuna_search_writes_its_best_parameters(tmp_path):
    sweep = tmp_path / "optuna"
    proc = run_train_py(
        ["hparams_search=classification", "hydra.sweeper.n_trials=3", *FAST_JOB, f"hydra.sweep.dir={sweep}"]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    params = results.best_params
    assert set(params) == {"optim", "optim.lr", "optim.weight_decay", "data.batch_size", "model.net.channels"}
    assert params.optim in ("adam", "adamw", "sgd") and 1e-4 <= params["optim.lr"] <= 0.3
    jobs = collect_jobs(sweep)
    assert len(jobs) == 3 and all(j.ok for j in jobs)
    assert results.best_value == pytest.approx(max(j.value for j in jobs))  # maximised val/acc
    best = max(jobs, key=lambda j: j.value)
    channels = OmegaConf.load(best.path / "config.yaml").model.net.channels
    assert str(list(channels)).replace(" ", "") == params["model.net.channels"]  # the list came through
    assert "Optuna best value" in proc.stdout and (sweep / "summary.md").is_file()


def _search_options():
    return sorted(p.stem for p in (CONF_DIR / "hparams_search").glob("*.yaml"))


@pytest.mark.parametrize("name", _search_options())
def test_search_spaces_name_existing_options(name):
    """Every parameter of a search space exists in the config of the task it is meant for."""
    model = {"segmentation": "unet", "regression": "regressor"}.get(name)
    if model and not (CONF_DIR / "model" / f"{model}.yaml").is_file():
        pytest.skip(f"model={model} is not in conf/model yet")
    overrides = [f"hparams_search={name}"] + ([f"model={model}"] if model else [])
    if name == "segmentation" and (CONF_DIR / "experiment" / "cats_unet.yaml").is_file():
        overrides = [f"hparams_search={name}", "experiment=cats_unet"]
    cfg = compose_cfg(overrides)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.sampler.seed is not None
    assert sweeper.direction in ("maximize", "minimize")
    assert (sweeper.direction == "maximize") == (cfg.model.monitor_mode == "max")
    assert cfg.optimized_metric == cfg.model.monitor
    for key in sweeper.params:
        if (CONF_DIR / key).is_dir():  # a config group (optimizer choice)
            continue
        assert OmegaConf.select(cfg, key, default="missing") != "missing", (
            f"{name}: {key} is not in the config"
        )


@pytest.mark.filterwarnings("ignore:Deprecated API features detected")  # optuna 2.x on SQLAlchemy 1.4
def test_pinned_optuna_keeps_a_study_on_disk(tmp_path):
    """The pins in pyproject.toml (optuna 2.x, SQLAlchemy < 2, alembic < 1.14) make `storage: sqlite:///...`
    work, so a later sweep with the same study_name continues the study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    for _ in range(2):
        study = optuna.create_study(
            study_name="s", storage=storage, load_if_exists=True, sampler=optuna.samplers.TPESampler(seed=1)
        )
        study.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=2)
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 4
