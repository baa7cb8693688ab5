"""The Optuna search behind ``hparams_search=...``: hydra-optuna-sweeper's, made resumable and prunable.

Differences from the plugin's own sweep loop (``hydra_plugins.hydra_optuna_sweeper``):

- ``n_trials`` is the study's total: a search whose study is stored (``storage: sqlite:///...``, by
  default ``optuna.db`` in the sweep folder) and is run again continues until the study holds that many
  finished trials (complete, pruned or failed).
- A trial left running by a killed sweep is launched again with its own parameters, in its own job folder
  (the job number is the trial number), where ``resume_sweep=true`` resumes it from ``last.ckpt``.
- ``pruner``: the study's pruner (``optuna.pruners.*``); each job reports its monitored validation value per
  epoch through :class:`lit_vision.callbacks.optuna_pruning.OptunaPruning`, and a job the pruner stops
  is told to the study as PRUNED (its ``metrics.json`` says ``pruned``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial, TrialState

from lit_vision.callbacks.optuna_pruning import forget_trial, register_trial
from lit_vision.errors import UserError
from lit_vision.runs.sweep_resume import read_metrics

log = logging.getLogger("lit_vision")

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def build_pruner(config: Any) -> optuna.pruners.BasePruner | None:
    """The study's pruner from ``hydra.sweeper.pruner``: a config whose ``_target_`` is a class of
    ``optuna.pruners`` (Hydra usually hands it over instantiated already), or null for none."""
    if config is None or isinstance(config, optuna.pruners.BasePruner):
        return config
    target = str(OmegaConf.select(config, "_target_", default="")) if isinstance(config, DictConfig) else ""
    if not target.startswith("optuna.pruners."):
        raise UserError(
            f"hydra.sweeper.pruner={config!r} is not an Optuna pruner: use hydra/sweeper/pruner=median, "
            "hyperband or nop, or a config whose _target_ is a class of optuna.pruners."
        )
    return instantiate(config)


def finished_trials(study: optuna.Study) -> int:
    """How many trials of ``study`` are done (complete, pruned or failed)."""
    return sum(t.state in FINISHED_STATES for t in study.get_trials(deepcopy=False))


def interrupted_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials a previous sweep left RUNNING (it was killed); this sweep runs them again."""
    return [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]


def trial_overrides(trial: FrozenTrial | optuna.trial.Trial) -> tuple[str, ...]:
    """The job overrides of a trial: its sampled parameters, then the fixed ones (kept as user attributes)."""
    params = {**trial.params, **trial.user_attrs}
    return tuple(f"{name}={value}" for name, value in params.items())


def job_outcome(ret: JobReturn) -> tuple[TrialState, float | None]:
    """What to tell the study about a finished job: PRUNED when its metrics.json says so, else its value."""
    output_dir = (
        OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir", default=None) if ret.hydra_cfg else None
    )
    if output_dir is not None and read_metrics(Path(output_dir)).get("status") == "pruned":
        return TrialState.PRUNED, None
    if ret.status == JobStatus.FAILED:
        return TrialState.FAIL, None
    try:
        return TrialState.COMPLETE, float(ret.return_value)
    except (TypeError, ValueError):
        return TrialState.FAIL, None


class ResumableOptunaSweeperImpl(OptunaSweeperImpl):
    """The plugin's sweeper with a total ``n_trials``, re-launched interrupted trials and a pruner."""

    def __init__(self, *args: Any, pruner: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pruner_config = pruner

    def sweep(self, arguments: list[str]) -> None:
        """Run trials until the study holds ``n_trials`` finished ones; write optimization_results.yaml."""
        assert self.config is not None and self.launcher is not None
        if len(self._get_directions()) > 1:
            return super().sweep(arguments)  # multi-objective: the plugin's loop (no pruning)
        self._process_searchspace_config()
        params_conf = [*self._parse_sweeper_params_config(), *arguments]
        if isinstance(self.sampler, functools.partial) and self.sampler.func == optuna.samplers.GridSampler:
            return super().sweep(arguments)  # a grid: the plugin's loop counts the grid's points
        distributions, fixed_params = create_params_from_overrides(params_conf)
        for name in fixed_params:
            distributions.pop(name, None)

        study = self._open_study()
        for frozen in interrupted_trials(study):
            log.info("Trial %d was left unfinished by an earlier sweep: running it again.", frozen.number)
            # Trial's constructor is public; the id is FrozenTrial's (private) link to the stored trial.
            trial = optuna.trial.Trial(study, frozen._trial_id)
            self._run(study, [trial], [trial_overrides(frozen)])
        done = finished_trials(study)
        if done:
            log.info(
                "The study %s holds %d finished trials of n_trials=%d.", study.study_name, done, self.n_trials
            )
            # A seeded sampler restarted in a new process would draw the first trials' parameters again.
            study.sampler.reseed_rng()
        while done < self.n_trials:
            trials = [study.ask() for _ in range(min(self.n_jobs, self.n_trials - done))]
            self._run(study, trials, self._configure_trials(trials, distributions, fixed_params))
            done += len(trials)
        self._write_results(study)

    def _open_study(self) -> optuna.Study:
        if isinstance(self.storage, str) and self.storage.startswith("sqlite:///"):
            Path(self.storage[len("sqlite:///") :]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        elif self.storage is None and any(Path(str(self.sweep_dir)).glob("*/metrics.json")):
            raise UserError(
                f"hydra.sweep.dir={self.sweep_dir} holds an Optuna search whose study was kept in memory "
                "(hydra.sweeper.storage=null), so it cannot be continued. Keep studies on disk "
                "(the default storage, sqlite:///<sweep folder>/optuna.db) or choose a new hydra.sweep.dir."
            )
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=self.sampler,
            pruner=build_pruner(self.pruner_config),
            direction=self._get_directions()[0],
            load_if_exists=True,
        )
        log.info(
            "Study %s (storage %s, pruner %s)", study.study_name, self.storage, type(study.pruner).__name__
        )
        return study

    def _run(
        self, study: optuna.Study, trials: list[optuna.trial.Trial], overrides: Sequence[Sequence[str]]
    ) -> None:
        """Launch one job per trial (job number = trial number) and tell the study how each ended."""
        numbers = [t.number for t in trials]
        batches = (
            [(trials, overrides)]
            if numbers == list(range(numbers[0], numbers[0] + len(numbers)))
            else [([t], [o]) for t, o in zip(trials, overrides, strict=True)]
        )
        for batch, batch_overrides in batches:
            for trial in batch:
                register_trial(trial)
            try:
                returns = self.launcher.launch(list(batch_overrides), initial_job_idx=batch[0].number)
            finally:
                for trial in batch:
                    forget_trial(trial.number)
            for trial, ret in zip(batch, returns, strict=True):
                state, value = job_outcome(ret)
                study.tell(trial.number, values=value, state=state)
                if state == TrialState.PRUNED:
                    log.info("Trial %d was pruned.", trial.number)
            self.job_idx = batch[-1].number + 1

    def _write_results(self, study: optuna.Study) -> None:
        try:
            best = study.best_trial
        except ValueError:  # no complete trial (all pruned or failed)
            log.warning("No trial of the study %s completed; no best parameters.", study.study_name)
            return
        results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
        log.info("Best parameters: %s", best.params)
        log.info("Best value: %s", best.value)
        OmegaConf.save(OmegaConf.create(results), f"{self.config.hydra.sweep.dir}/optimization_results.yaml")
