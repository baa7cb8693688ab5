"""logger=mlflow and logger=wandb against the real packages, offline: what lands in the MLflow store and in
the W&B offline run folder after a tiny digits run, the image adapter, and the missing-package error."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from lit_vision.callbacks.image_log import as_hwc_uint8, log_image
from lit_vision.callbacks.trackers import MLFlowLogger, tracker_runs
from lit_vision.errors import UserError, find_user_error
from lit_vision.runs.run import train
from tests.helpers import compose_cfg, without_hydra

pytest.importorskip("mlflow")
pytest.importorskip("wandb")

TINY_RUN = [
    "trainer.max_epochs=2",
    "+trainer.limit_train_batches=4",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "callbacks.confusion_matrix.max_overhead=null",  # a matrix for every validation epoch
]


@pytest.fixture(scope="module", autouse=True)
def offline_trackers(tmp_path_factory) -> Iterator[None]:
    """No tracker reaches the network or the home folder: offline W&B, no MLflow telemetry or server."""
    home = tmp_path_factory.mktemp("tracker_home")
    patch = pytest.MonkeyPatch()
    patch.delenv("MLFLOW_TRACKING_URI", raising=False)
    patch.delenv("WANDB_API_KEY", raising=False)
    for key, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": str(home / "wandb_config"),
        "WANDB_CACHE_DIR": str(home / "wandb_cache"),
        "WANDB_DATA_DIR": str(home / "wandb_data"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }.items():
        patch.setenv(key, value)
    yield
    patch.undo()


def train_tiny(run_dir: Path, *overrides: str) -> dict:
    cfg = compose_cfg([*TINY_RUN, *overrides], output_dir=run_dir)
    metrics, _ = train(without_hydra(cfg))
    return metrics


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, offline_trackers) -> tuple[Path, Path]:
    """Two runs in one process (as in a sweep), each logging to TensorBoard, MLflow and W&B."""
    first, second = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    train_tiny(first, "logger=[tensorboard,mlflow,wandb]")
    train_tiny(second, "logger=[mlflow,wandb]", "trainer.max_epochs=1")
    return first, second


# ---------------------------------------------------------------------------------------------- MLflow
def mlflow_runs(run_dir: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{run_dir / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lit_vision")
    return client, client.search_runs([experiment.experiment_id])


def test_mlflow_store_holds_the_runs_metrics_params_and_confusion_matrix(two_runs):
    run_dir = two_runs[0]
    client, runs = mlflow_runs(run_dir)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["lit_vision.run_dir"] == str(run_dir)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert run.data.metrics["test/acc"] == pytest.approx(saved["test/acc"], abs=1e-6)
    history = client.get_metric_history(run.info.run_id, "val/acc")
    assert len(history) == 2  # one value per epoch
    assert max(m.value for m in history) == pytest.approx(saved["best_model_score"], abs=1e-6)
    # the resolved config, flattened
    assert run.data.params["optim/lr"] == "0.001"
    assert run.data.params["data/_target_"] == "lit_vision.data.digits.DigitsDataModule"
    assert run.data.params["seed"] == "42"
    paths = {f.path for f in client.list_artifacts(run.info.run_id, "confusion_matrix/test")}
    assert paths == {"confusion_matrix/test/test.png"}
    val = {f.path for f in client.list_artifacts(run.info.run_id, "confusion_matrix/val")}
    assert val == {"confusion_matrix/val/val_epoch000.png", "confusion_matrix/val/val_epoch001.png"}
    # the artifacts are files inside the run folder
    root = Path(run.info.artifact_uri.removeprefix("file://"))
    assert root.is_relative_to(run_dir / "mlflow" / "artifacts")
    stored = root / "confusion_matrix/test/test.png"
    # the same picture as the PNG in the run folder
    assert np.array_equal(
        np.asarray(Image.open(stored)), np.asarray(Image.open(run_dir / "confusion_matrix/test.png"))
    )


def test_each_run_has_its_own_finished_mlflow_run(two_runs):
    _, runs = mlflow_runs(two_runs[1])
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert runs[0].data.tags["lit_vision.run_dir"] == str(two_runs[1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_mlflow_ui_serves_the_store_and_its_figures(two_runs):
    """`mlflow ui --backend-store-uri sqlite:///<run>/mlflow/mlflow.db` (on localhost) lists the run and
    serves its confusion matrix: the installed mlflow's server works with the pinned SQLAlchemy 1.4."""
    run_dir = two_runs[0]
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{run_dir / 'mlflow' / 'mlflow.db'}"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        found = None
        for _ in range(240):  # the server starts in seconds; a loaded machine may need a minute or two
            if server.poll() is not None:
                pytest.fail(f"mlflow ui exited: {server.stderr.read()[-2000:]}")
            try:
                request = urllib.request.Request(
                    f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=lit_vision"
                )
                with urllib.request.urlopen(request, timeout=5) as response:
                    found = json.load(response)
                break
            except OSError:
                time.sleep(0.5)
        assert found is not None, "mlflow ui did not answer"
        search = urllib.request.Request(
            f"{base}/api/2.0/mlflow/runs/search",
            data=json.dumps({"experiment_ids": [found["experiment"]["experiment_id"]]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(search, timeout=30) as response:
            (run,) = json.load(response)["runs"]
        assert run["info"]["status"] == "FINISHED"
        query = f"path=confusion_matrix/test/test.png&run_uuid={run['info']['run_id']}"
        with urllib.request.urlopen(f"{base}/get-artifact?{query}", timeout=30) as response:
            served = response.read()
        root = Path(run["info"]["artifact_uri"].removeprefix("file://"))
        assert served == (root / "confusion_matrix/test/test.png").read_bytes()
    finally:
        server.terminate()  # the CLI stops its uvicorn worker with it
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_runs_pointed_at_one_store_are_listed_together(tmp_path):
    store = tmp_path / "store"
    for name in ("a", "b"):
        logger = MLFlowLogger(run_dir=str(tmp_path / name), store=str(store), run_name=name)
        logger.log_metrics({"val/acc": 0.5}, step=1)
        logger.end_run(failed=name == "b")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("lit_vision").experiment_id])
    assert sorted((r.info.run_name, r.info.status) for r in runs) == [("a", "FINISHED"), ("b", "FAILED")]
    assert not (tmp_path / "a").exists()  # the store holds everything


def test_an_explicit_tracking_uri_replaces_the_run_folder_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    logger = MLFlowLogger(run_dir=str(tmp_path / "run"), tracking_uri=uri, experiment_name="other")
    logger.log_metrics({"val/acc": 0.25}, step=0)
    logger.end_run(failed=False)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("other").experiment_id])
    assert run.data.metrics == {"val/acc": 0.25}
    assert not (tmp_path / "run").exists()  # no store of its own in the run folder


def test_a_param_logged_twice_with_another_value_keeps_the_first_and_warns(tmp_path):
    """MLflow refuses to change a param; the task's hyperparameters and the config may both name one."""
    logger = MLFlowLogger(run_dir=str(tmp_path))
    logger.log_hyperparams({"scheduler": {"auto": True}, "lr": 0.1})
    logger.log_hyperparams({"lr": 0.1, "seed": 3})  # the same value again: fine
    with pytest.warns(UserWarning, match="'scheduler/auto' stays 'True'"):
        logger.log_hyperparams({"scheduler": {"auto": False}, "epochs": 2})
    params = logger.experiment.get_run(logger.run_id).data.params
    assert params == {"scheduler/auto": "True", "lr": "0.1", "seed": "3", "epochs": "2"}


# ---------------------------------------------------------------------------------------------- W&B
def wandb_records(run_folder: Path) -> list:
    """The records of an offline W&B run file (``run-<id>.wandb``): LevelDB-log blocks of protobufs.

    Parsed with W&B's own protobuf schema (plain data, nothing executed).
    """
    from wandb.proto import wandb_internal_pb2

    (path,) = run_folder.glob("run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, position, pending, records = 32768, 7, b"", []
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:  # a block's tail too short for a header is padding
            position += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if kind == 0:
            position += left
            continue
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # 1 full, 2 first, 3 middle, 4 last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def wandb_run_folder(run_dir: Path) -> Path:
    (folder,) = (run_dir / "wandb").glob("offline-run-*")
    return folder


def wandb_contents(run_dir: Path) -> dict:
    """``config`` (top-level key -> value), ``history`` (key -> values in order), ``exit_code``, ``run_id``."""
    config: dict = {}
    history: dict[str, list] = {}
    exit_code = None
    run_id = None
    for record in wandb_records(wandb_run_folder(run_dir)):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run_id = record.run.run_id
            config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in record.config.update if i.key})
        elif kind == "history":
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                history.setdefault(key, []).append(json.loads(item.value_json))
        elif kind == "exit":
            exit_code = record.exit.exit_code
    return {"config": config, "history": history, "exit_code": exit_code, "run_id": run_id}


def test_wandb_offline_run_holds_config_metrics_and_images(two_runs):
    run_dir = two_runs[0]
    contents = wandb_contents(run_dir)
    assert contents["exit_code"] == 0  # finished, ready for `wandb sync`
    config = contents["config"]
    assert config["optim"]["lr"] == 0.001
    assert config["data"]["_target_"] == "lit_vision.data.digits.DigitsDataModule"
    assert config["seed"] == 42
    saved = json.loads((run_dir / "metrics.json").read_text())
    history = contents["history"]
    assert history["test/acc"] == [pytest.approx(saved["test/acc"], abs=1e-6)]
    assert len(history["val/acc"]) == 2
    # the figures: one media entry per logged picture, and the PNG files beside them
    (test_matrix,) = history["confusion_matrix/test/filenames"]
    media = wandb_run_folder(run_dir) / "files"
    assert len(history["confusion_matrix/val/filenames"]) == 2
    picture = np.asarray(Image.open(media / test_matrix[0]).convert("RGB"))
    assert np.array_equal(
        picture, np.asarray(Image.open(run_dir / "confusion_matrix/test.png").convert("RGB"))
    )
    assert history["predictions/test/filenames"]


def test_a_second_run_in_the_same_process_gets_its_own_wandb_run(two_runs):
    first, second = (wandb_contents(run_dir) for run_dir in two_runs)
    assert first["run_id"] != second["run_id"]
    assert len(second["history"]["val/acc"]) == 1  # only its own epoch
    assert second["exit_code"] == 0


# ---------------------------------------------------------------------------------------------- adapter
def test_figures_go_to_every_image_logger_and_only_there(two_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(two_runs[0] / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert {"confusion_matrix/test", "confusion_matrix/val", "predictions/test"} <= set(
        events.Tags()["images"]
    )
    assert not (two_runs[1] / "tensorboard").exists()  # the second run has no TensorBoard logger


class _Recorder:
    """Stands in for a logger the adapter does not know (like CSVLogger): it must not be called."""

    def __getattr__(self, name):
        raise AssertionError(f"the adapter used {name} of a logger that takes no images")


class _Trainer:
    def __init__(self, loggers):
        self.loggers = loggers
        self.global_step = 7


def test_log_image_skips_loggers_without_images_and_names_the_ones_it_used(tmp_path):
    logger = MLFlowLogger(run_dir=str(tmp_path))
    sent = log_image(_Trainer([_Recorder(), logger]), "confusion_matrix/val", np.zeros((4, 6, 3), np.uint8))
    assert sent == ["MLFlowLogger"]
    paths = [f.path for f in logger.experiment.list_artifacts(logger.run_id, "confusion_matrix/val")]
    assert paths == ["confusion_matrix/val/step000007.png"]
    assert log_image(_Trainer([_Recorder()]), "x", np.zeros((2, 2, 3), np.uint8)) == []


def test_as_hwc_uint8_reads_chw_floats_as_zero_to_one():
    chw = torch.zeros(3, 2, 5)
    chw[0] = 1.0
    chw[1] = 0.5
    chw[2] = 2.0  # clipped
    array = as_hwc_uint8(chw, "CHW")
    assert array.shape == (2, 5, 3) and array.dtype == np.uint8
    assert array[0, 0].tolist() == [255, 128, 255]
    with pytest.raises(ValueError, match="dataformats"):
        as_hwc_uint8(chw, "NCHW")


# ---------------------------------------------------------------------------------------------- run ends
class _Tracker:
    def __init__(self, broken: bool = False):
        self.ended: list[bool] = []
        self.broken = broken

    def end_run(self, failed: bool) -> None:
        self.ended.append(failed)
        if self.broken:
            raise RuntimeError("store is gone")


def test_tracker_runs_end_as_failed_when_the_run_raises_and_a_broken_tracker_does_not_hide_it():
    good, broken = _Tracker(), _Tracker(broken=True)
    with tracker_runs([broken, good]):
        pass
    assert good.ended == [False] and broken.ended == [False]
    with pytest.raises(KeyError), tracker_runs([broken, good]):
        raise KeyError("the run's own error")
    assert good.ended == [False, True]


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("option", "package"), [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_a_missing_package_is_a_user_error_with_the_pip_command(option, package, tmp_path, monkeypatch):
    cfg = compose_cfg([f"logger={option}"], output_dir=tmp_path)
    monkeypatch.setitem(sys.modules, package, None)  # `import <package>` fails as if it were not installed
    with pytest.raises(Exception) as caught:
        instantiate(cfg.logger[option])
    error = find_user_error(caught.value)
    assert isinstance(error, UserError)
    assert f"logger={option} needs the `{package}` package" in str(error)
    assert f"pip install '{package}>=" in str(error)
    assert "\n" not in str(error)
