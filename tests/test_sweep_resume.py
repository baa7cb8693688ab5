"""Resumable sweeps (resume_sweep=true) and Optuna searches that continue their stored study and prune bad
trials: finished jobs are skipped, interrupted ones resume from last.ckpt, failed ones run again."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from lit_vision.callbacks import optuna_pruning
from lit_vision.callbacks.optuna_pruning import OptunaPruning
from lit_vision.errors import UserError
from lit_vision.runs.optuna_search import build_pruner, finished_trials, interrupted_trials
from lit_vision.runs.run import train
from lit_vision.runs.sweep_jobs import collect_jobs
from lit_vision.runs.sweep_resume import (
    check_same_sweep,
    plan_job,
    resume_job_from,
    set_aside_previous_attempt,
)
from lit_vision.runs.sweep_summary import write_summary
from tests.helpers import compose_cfg, run_train_py, without_hydra
from tests.sweep_probe import sessions

FAST_JOB = [
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_model_summary=false",
    "trainer.enable_progress_bar=false",
    "callbacks=[model_checkpoint]",
    "logger=none",
]


def _job(folder: Path, metrics: dict | None = None, last_ckpt: bool = False) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    if last_ckpt:
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "last.ckpt").write_bytes(b"state")
    return folder


# ------------------------------------------------------------------------------------ what a job does
def test_plan_skips_finished_jobs_resumes_interrupted_ones_and_reruns_failed_ones(tmp_path):
    done = plan_job(_job(tmp_path / "0", {"status": "completed", "optimized_value": 0.75}, last_ckpt=True))
    assert (done.action, done.value) == ("skip", 0.75)
    assert plan_job(_job(tmp_path / "1", {"status": "pruned", "optimized_value": 0.1})).action == "skip"
    interrupted = plan_job(_job(tmp_path / "2", {"status": "interrupted"}, last_ckpt=True))
    assert (interrupted.action, interrupted.ckpt_path) == (
        "resume",
        tmp_path / "2" / "checkpoints" / "last.ckpt",
    )
    killed = plan_job(_job(tmp_path / "3", None, last_ckpt=True))  # SIGKILL: no metrics.json written
    assert killed.action == "resume"
    assert plan_job(_job(tmp_path / "4", {"status": "failed"}, last_ckpt=True)).action == "fresh"
    assert plan_job(_job(tmp_path / "5", {"status": "interrupted"})).action == "fresh"  # nothing saved
    assert plan_job(tmp_path / "6").action == "fresh"  # a job the killed sweep never reached


def test_a_failed_attempt_is_moved_aside_not_deleted(tmp_path):
    job = _job(tmp_path / "1", {"status": "failed"}, last_ckpt=True)
    (job / "train.log").write_text("log of both attempts")
    assert set_aside_previous_attempt(job) == job / "previous_attempts" / "1"
    assert sorted(p.name for p in job.iterdir()) == [".hydra", "previous_attempts", "train.log"]
    assert (job / "previous_attempts" / "1" / "checkpoints" / "last.ckpt").read_bytes() == b"state"
    (job / "metrics.json").write_text("{}")
    assert set_aside_previous_attempt(job) == job / "previous_attempts" / "2"
    assert set_aside_previous_attempt(job) is None  # nothing left to move


def test_a_resumed_job_passes_its_checkpoint_to_its_other_ddp_processes(tmp_path):
    """Lightning's DDP launcher starts a job's other ranks from the job's task overrides (run.ddp_job_scope):
    they must resume from the same last.ckpt as rank 0."""
    cfg = compose_cfg(["seed=3", "ckpt_path=/old.ckpt"], output_dir=tmp_path)
    HydraConfig.instance().set_config(cfg)
    try:
        resume_job_from(tmp_path / "checkpoints" / "last.ckpt")
        task = list(HydraConfig.get().overrides.task)
    finally:
        HydraConfig.instance().cfg = None
    assert task == ["seed=3", f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}"]


def test_resuming_a_sweep_with_other_overrides_is_refused(tmp_path):
    record = {"hydra": {"overrides": {"task": ["seed=1,2", "optim.lr=0.1"]}}}
    (tmp_path / "multirun.yaml").write_text(OmegaConf.to_yaml(record))
    check_same_sweep(tmp_path, ["optim.lr=0.1", "seed=1,2", "resume_sweep=true"])  # same sweep: fine
    with pytest.raises(UserError, match=r"other overrides \(optim.lr=0.1 seed=1,2\) than these"):
        check_same_sweep(tmp_path, ["seed=1,2", "optim.lr=0.2", "resume_sweep=true"])


def test_summary_counts_pruned_trials_apart_from_failed_ones(tmp_path):
    base = {"optimized_metric": "val/acc", "optimized_mode": "max"}
    _job(tmp_path / "0", {**base, "status": "completed", "optimized_value": 0.9})
    _job(tmp_path / "1", {**base, "status": "pruned", "optimized_value": 0.2, "pruned_at_epoch": 0})
    _job(tmp_path / "2", {**base, "status": "failed", "error": "boom"})
    jobs = write_summary(tmp_path)
    assert [(j.name, j.ok, j.pruned, j.failed) for j in jobs] == [
        ("0", True, False, False),
        ("1", False, True, False),
        ("2", False, False, True),
    ]
    markdown = (tmp_path / "summary.md").read_text()
    assert "3 jobs, 1 completed, 1 pruned, 1 failed" in markdown
    assert "| 1 | pruned |" in markdown


def test_resume_sweep_in_a_single_run_says_how_to_resume_a_run(tmp_path):
    proc = run_train_py(["resume_sweep=true", "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}"])
    assert proc.returncode == 2
    assert "resume_sweep=true continues a sweep: use it with -m" in " ".join(proc.stderr.split())


# ------------------------------------------------------------------------------------------ pruning
def test_pruner_must_be_an_optuna_pruner():
    assert build_pruner(None) is None
    median = build_pruner(
        OmegaConf.create({"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 2})
    )
    assert isinstance(median, optuna.pruners.MedianPruner)
    with pytest.raises(UserError, match="is not an Optuna pruner"):
        build_pruner(OmegaConf.create({"_target_": "os.system", "command": "echo"}))


@pytest.mark.parametrize(
    ("option", "kind"),
    [("nop", "NopPruner"), ("median", "MedianPruner"), ("hyperband", "HyperbandPruner")],
)
def test_pruner_options_build_optuna_pruners(option, kind):
    cfg = compose_cfg(
        ["hparams_search=classification", f"hydra/sweeper/pruner={option}", "trainer.max_epochs=7"]
    )
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.lit_vision_optuna.ResumableOptunaSweeper"
    assert cfg.hydra.sweeper.storage.endswith("/optuna.db")  # kept on disk, in the sweep folder
    assert cfg.callbacks.optuna_pruning.monitor == "val/acc"
    pruner = build_pruner(cfg.hydra.sweeper.pruner)
    assert type(pruner).__name__ == kind
    if option == "hyperband":
        assert pruner._max_resource == 7  # trainer.max_epochs


def test_a_pruned_trial_stops_before_max_epochs_and_is_marked_pruned(tmp_path, monkeypatch):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # val/acc can never reach 2: the trial is pruned at its first report
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    trial = study.ask()
    monkeypatch.setattr(optuna_pruning, "current_trial", lambda: trial)
    cfg = without_hydra(
        compose_cfg([*FAST_JOB, "trainer.max_epochs=3", "trainer.precision=32-true"], output_dir=tmp_path)
    )
    with open_dict(cfg):
        cfg.callbacks.optuna_pruning = {
            "_target_": f"{OptunaPruning.__module__}.OptunaPruning",
            "monitor": "val/acc",
        }
    metrics, value = train(cfg)
    assert metrics["status"] == "pruned" and metrics["pruned_at_epoch"] == 0
    assert metrics["epochs"] == 1 < 3  # stopped after the first of three epochs
    assert not any(k.startswith("test/") for k in metrics)  # a pruned trial is not tested
    assert value == pytest.approx(metrics["val/acc"])
    assert list(study.trials[0].intermediate_values) == [0]
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "pruned"


def test_without_a_trial_the_pruning_callback_changes_nothing(tmp_path):
    cfg = without_hydra(compose_cfg([*FAST_JOB, "trainer.max_epochs=2"], output_dir=tmp_path))
    with open_dict(cfg):
        cfg.callbacks.optuna_pruning = {
            "_target_": f"{OptunaPruning.__module__}.OptunaPruning",
            "monitor": "val/acc",
        }
    metrics, _ = train(cfg)
    assert metrics["status"] == "completed" and metrics["epochs"] == 2


# ----------------------------------------------------------------------------------- end to end
PROBE = "+callbacks.probe._target_=tests.sweep_probe.SweepProbe"


@pytest.mark.slow
def test_a_killed_grid_sweep_rerun_skips_finished_jobs_resumes_and_reruns(tmp_path):
    sweep, log = tmp_path / "sweep", tmp_path / "sessions.txt"
    # job 1 fails in its first session, job 2 is killed (SIGTERM) after its first epoch, which stops the sweep
    args = [
        "-m",
        "seed=1,2,3",
        "trainer.max_epochs=2",
        *FAST_JOB,
        PROBE,
        f"+callbacks.probe.log_file={log}",
        "+callbacks.probe.fail_job=1",
        "+callbacks.probe.kill_job=2",
        f"hydra.sweep.dir={sweep}",
    ]
    first = run_train_py(args)
    assert first.returncode == 143, first.stderr[-3000:]
    assert sessions(log) == [(0, 0), (1, 0), (2, 0)]
    status = {j.name: j.status for j in collect_jobs(sweep)}
    assert status == {"0": "completed", "1": "failed", "2": "interrupted"}
    assert (sweep / "2" / "checkpoints" / "last.ckpt").is_file()

    refused = run_train_py(args)  # without resume_sweep=true the folder is not reused
    assert (
        refused.returncode == 2
        and "continue that sweep with the same command and resume_sweep=true"
        in " ".join(refused.stderr.split())
    )

    second = run_train_py([*args, "resume_sweep=true"])
    assert second.returncode == 0, second.stderr[-3000:]
    # job 0 not trained again; job 1 trained from scratch; job 2 continued at epoch 1 from its last.ckpt
    assert sessions(log)[3:] == [(1, 0), (2, 1)]
    jobs = collect_jobs(sweep)
    assert [j.status for j in jobs] == ["completed"] * 3 and all(j.metrics["epochs"] == 2 for j in jobs)
    assert (sweep / "1" / "previous_attempts" / "1" / "metrics.json").is_file()  # the failed attempt, kept
    assert "3 jobs, 3 completed, 0 failed" in (sweep / "summary.md").read_text()
    assert "resume_sweep" not in (sweep / "summary.csv").read_text().split("\n")[0]

    changed = run_train_py([*args[:1], "seed=1,2", *args[2:], "resume_sweep=true"])
    assert changed.returncode == 2 and "holds a sweep started with other overrides" in " ".join(
        changed.stderr.split()
    )


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Deprecated API features detected")
def test_a_killed_optuna_search_continues_its_stored_study_to_n_trials(tmp_path):
    sweep, log = tmp_path / "search", tmp_path / "sessions.txt"
    args = [
        "hparams_search=classification",
        "trainer.max_epochs=2",
        *FAST_JOB,
        PROBE,
        f"+callbacks.probe.log_file={log}",
        "+callbacks.probe.kill_job=1",
        f"hydra.sweep.dir={sweep}",
        "resume_sweep=true",  # may be given from the start: the command is then the same every time
    ]
    first = run_train_py([*args, "hydra.sweeper.n_trials=2"])
    assert first.returncode == 143, first.stderr[-3000:]
    storage = f"sqlite:///{sweep / 'optuna.db'}"
    study = optuna.load_study(study_name="train_classification", storage=storage)
    assert finished_trials(study) == 1 and [t.number for t in interrupted_trials(study)] == [1]

    second = run_train_py([*args, "hydra.sweeper.n_trials=3"])
    assert second.returncode == 0, second.stderr[-3000:]
    assert sessions(log) == [(0, 0), (1, 0), (1, 1), (2, 0)]  # trial 1 resumed at epoch 1, then trial 2
    study = optuna.load_study(study_name="train_classification", storage=storage)
    assert [(t.number, t.state.name) for t in study.trials] == [
        (0, "COMPLETE"),
        (1, "COMPLETE"),
        (2, "COMPLETE"),
    ]
    params_1 = OmegaConf.load(sweep / "1" / ".hydra" / "overrides.yaml")
    assert f"optim.lr={study.trials[1].params['optim.lr']}" in params_1  # its own parameters again
    assert len(collect_jobs(sweep)) == 3 and (sweep / "optimization_results.yaml").is_file()
    resumed = collect_jobs(sweep)[1].metrics
    assert (resumed["status"], resumed["epochs"], resumed["global_step"]) == ("completed", 2, 6)


@pytest.mark.slow
def test_an_optuna_search_with_a_pruner_stops_trials_early(tmp_path):
    sweep = tmp_path / "search"
    proc = run_train_py(
        [
            "hparams_search=classification",
            "hydra.sweeper.n_trials=2",
            "trainer.max_epochs=3",
            *FAST_JOB,
            "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
            "+hydra.sweeper.pruner.lower=2",  # val/acc never reaches 2: every trial is pruned at epoch 0
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = collect_jobs(sweep)
    assert [(j.status, j.metrics["epochs"]) for j in jobs] == [("pruned", 1), ("pruned", 1)]
    study = optuna.load_study(study_name="train_classification", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert {t.state.name for t in study.trials} == {"PRUNED"}
    assert "2 jobs, 0 completed, 2 pruned, 0 failed" in (sweep / "summary.md").read_text()
    assert "Sweep summary (2 jobs, 2 pruned, 0 failed)" in proc.stdout
