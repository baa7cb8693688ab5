"""Experiment trackers beyond TensorBoard: MLflow (local SQLite store) and Weights & Biases (offline files).

Both are Lightning's own loggers (``MLFlowLogger``, ``WandbLogger``) with project defaults:

- everything lives in the run folder unless told otherwise (``<run>/mlflow/mlflow.db`` and
  ``<run>/mlflow/artifacts``; ``<run>/wandb/offline-run-*``), so nothing goes over the network;
- a missing package is a :class:`~lit_vision.errors.UserError` with the pip command, and the package is
  imported only when its logger is built (``import mlflow`` alone takes seconds);
- :func:`tracker_runs` ends their runs when the lit_vision run ends (Lightning leaves a W&B run open, and
  the next job of a sweep in the same process would write into it).

MLflow 3 refuses its plain-folder store (``./mlruns``) unless ``MLFLOW_ALLOW_FILE_STORE=true``, so the store
here is SQLite: ``mlflow ui --backend-store-uri sqlite:///<run>/mlflow/mlflow.db`` browses it.
"""

from __future__ import annotations

import logging
import os
from argparse import Namespace
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers import Logger
from lightning.pytorch.loggers import MLFlowLogger as LightningMLFlowLogger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from lit_vision.errors import UserError

log = logging.getLogger(__name__)

# Lightning's MLFlowLogger cuts param values to this many characters.
MLFLOW_PARAM_CHARS = 250

# What `make install` installs (the project's `trackers` extra); the pins match pyproject.toml.
PIP_COMMANDS = {
    "mlflow": "pip install 'mlflow>=3.16,<3.17'",
    "wandb": "pip install 'wandb>=0.31,<0.32'",
}


def require_package(name: str, logger_option: str) -> None:
    """Import ``name`` (the tracker's package) or raise a UserError that gives the pip command."""
    try:
        __import__(name)
    except ImportError as exc:
        raise UserError(
            f"logger={logger_option} needs the `{name}` package, which is not installed here ({exc}). "
            f"Install it with `{PIP_COMMANDS[name]}` (or `pip install -e '.[trackers]'` in the checkout), "
            "or choose another logger (logger=tensorboard, logger=csv)."
        ) from None


def default_run_name(run_dir: str | os.PathLike) -> str:
    """A run's name in a tracker when none is given: ``<date>/<time>`` of its folder (``<time>/<job>`` in a sweep)."""
    path = Path(run_dir)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


class MLFlowLogger(LightningMLFlowLogger):
    """Lightning's ``MLFlowLogger`` writing to a SQLite store in the run folder by default.

    Args:
        run_dir: the run folder (``${paths.output_dir}``); tagged on the MLflow run as ``lit_vision.run_dir``.
        store: folder of the SQLite store (``mlflow.db``) and the artifacts (``artifacts/``); default
            ``<run_dir>/mlflow``. Point several runs (a sweep) at one folder to compare them in one ``mlflow ui``.
        tracking_uri: any MLflow tracking URI (a server, another database); replaces ``store``'s database
            (and, unless ``store`` is given too, its artifact folder: the server's own is used).
        run_name: the run's name in MLflow; default :func:`default_run_name`.
        **kwargs: passed to Lightning's ``MLFlowLogger`` (``experiment_name``, ``tags``, ``log_model``, ...).
    """

    def __init__(
        self,
        run_dir: str,
        store: str | None = None,
        tracking_uri: str | None = None,
        run_name: str | None = None,
        experiment_name: str = "lit_vision",
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        require_package("mlflow", "mlflow")
        store_dir = Path(store) if store else Path(run_dir) / "mlflow"
        store_dir = store_dir.absolute()
        if store or not tracking_uri:  # a server given alone keeps its own artifact location
            kwargs.setdefault("artifact_location", str(store_dir / "artifacts"))
        if not tracking_uri:
            store_dir.mkdir(parents=True, exist_ok=True)
            tracking_uri = f"sqlite:///{store_dir / 'mlflow.db'}"
        self.store_dir = store_dir
        self._logged_params: dict[str, str] = {}
        super().__init__(
            experiment_name=experiment_name,
            run_name=run_name or default_run_name(run_dir),
            tracking_uri=tracking_uri,
            tags={"lit_vision.run_dir": str(Path(run_dir).absolute()), **(tags or {})},
            **kwargs,
        )

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace) -> None:
        """Log the params not logged yet. MLflow refuses to change a param's value, and a run logs params
        from several sources (the resolved config, the task's and the DataModule's hyperparameters, again at
        test time): a key seen before keeps its first value, with a warning when the new one differs."""
        fresh = {}
        for key, value in _flatten_dict(_convert_params(params)).items():
            text = str(value)[:MLFLOW_PARAM_CHARS]
            if key not in self._logged_params:
                self._logged_params[key] = fresh[key] = text
            elif self._logged_params[key] != text:
                rank_zero_warn(
                    f"MLflow param {key!r} stays {self._logged_params[key]!r}: a later value {text!r} was "
                    "not logged (MLflow params cannot change within a run)."
                )
        if fresh:
            super().log_hyperparams(fresh)

    def end_run(self, failed: bool) -> None:
        """Mark the MLflow run FINISHED or FAILED (nothing when no run was started)."""
        if self._initialized and self.run_id is not None:
            self.experiment.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger``, offline by default, with its files in the run folder.

    An offline run is written to ``<save_dir>/wandb/offline-run-<date>_<time>-<id>/`` and uploaded later with
    ``wandb sync <that folder>``. ``offline=false`` logs to the W&B server (it needs ``wandb login``).

    Args:
        run_dir: the run folder (``${paths.output_dir}``): ``save_dir`` and the default run name.
        name: the run's name in W&B; default :func:`default_run_name`.
        console: W&B's console capture (``off`` leaves the terminal and the progress bars alone).
        **kwargs: passed to Lightning's ``WandbLogger`` and on to ``wandb.init`` (``project``, ``group``,
            ``tags``, ``entity``, ...).
    """

    def __init__(
        self,
        run_dir: str,
        name: str | None = None,
        offline: bool = True,
        project: str = "lit_vision",
        console: str = "off",
        **kwargs: Any,
    ) -> None:
        require_package("wandb", "wandb")
        import wandb  # already imported by require_package; needed for its Settings

        if offline:
            # set before wandb.init reads it; Lightning would set the older spelling "dryrun"
            os.environ["WANDB_MODE"] = "offline"
        kwargs.setdefault("save_dir", str(Path(run_dir).absolute()))
        kwargs.setdefault("settings", wandb.Settings(console=console, silent=True))
        super().__init__(name=name or default_run_name(run_dir), offline=offline, project=project, **kwargs)
        # Lightning passes anonymous=None, which wandb 0.31 answers with a deprecation warning on every run
        self._wandb_init.pop("anonymous", None)

    def end_run(self, failed: bool) -> None:
        """Finish the W&B run (exit code 1 when the lit_vision run failed) so its files are complete."""
        if self._experiment is not None:
            self._experiment.finish(exit_code=1 if failed else 0)
            self._experiment = None

    @property
    def run_folder(self) -> Path | None:
        """The folder of this logger's W&B run (``.../wandb/offline-run-...``), once it has started."""
        if self._experiment is None:
            return None
        return Path(self._experiment.dir).parent


@contextmanager
def tracker_runs(loggers: Sequence[Logger]) -> Iterator[None]:
    """End the runs of the MLflow and W&B loggers in ``loggers`` when the block ends (failed if it raised)."""
    failed = True
    try:
        yield
        failed = False
    finally:
        for logger in loggers:
            end_run = getattr(logger, "end_run", None)
            if end_run is None:
                continue
            try:
                end_run(failed)
            except Exception as exc:  # a tracker that cannot close must not hide the run's own result
                log.warning("Could not end the %s run: %s", type(logger).__name__, exc)
