"""Every config file of every group composes, resolves, and (for data/model/experiments) instantiates."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers import CONF_DIR, compose_cfg, without_hydra

# Groups selected with `group=name`; files of these groups are composed one by one.
GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")


def group_options():
    for group in GROUPS:
        for path in sorted((CONF_DIR / group).rglob("*.yaml")):
            name = path.relative_to(CONF_DIR / group).with_suffix("").as_posix()
            yield pytest.param(group, name, id=f"{group}={name}")


def override_for(group: str, name: str) -> str:
    """Optional groups (not in the defaults list) need a '+' prefix."""
    defaults = OmegaConf.load(CONF_DIR / "train.yaml").defaults
    listed = any(OmegaConf.is_dict(d) and group in d for d in defaults)
    return f"{group}={name}" if listed else f"+{group}={name}"


@pytest.mark.parametrize(("group", "name"), list(group_options()))
def test_every_config_file_composes_and_resolves(group, name, tmp_path):
    cfg = compose_cfg([override_for(group, name)], output_dir=tmp_path)
    resolved = OmegaConf.to_container(without_hydra(cfg), resolve=True)
    assert resolved["paths"]["output_dir"] == str(tmp_path)


def test_groups_exist():
    for group in (
        "data",
        "model",
        "optim",
        "scheduler",
        "trainer",
        "callbacks",
        "logger",
        "paths",
        "hydra",
        "experiment",
        "debug",
    ):
        assert (CONF_DIR / group).is_dir(), group


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")))
def test_every_experiment_instantiates_its_task(name, tmp_path):
    cfg = compose_cfg([f"experiment={name}"], output_dir=tmp_path)
    if OmegaConf.select(cfg, "model.net.weights"):  # fine-tuning recipes: no download in tests
        cfg = compose_cfg([f"experiment={name}", "model.net.weights=null"], output_dir=tmp_path)
    datamodule = instantiate(cfg.data)
    if cfg.data.get("num_features", 0) is None:  # taken from the table (data=temps), as train does
        datamodule.discover()
        cfg.data.num_features = datamodule.num_features
    task = instantiate(cfg.model)
    assert sum(p.numel() for p in task.parameters()) > 0


def test_every_callback_and_logger_instantiates(tmp_path):
    cfg = compose_cfg(["logger=many"], output_dir=tmp_path)
    from lit_vision.runs.run import instantiate_dict

    assert len(instantiate_dict(cfg.callbacks)) >= 3
    assert len(instantiate_dict(cfg.logger)) == 2
