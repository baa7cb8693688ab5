"""Start-up checks of the data and optim keys (issue 17, points 8 and 11): each bad value is one UserError
naming the key and the fix, found from the composed config before any DataModule or Trainer is built."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lit_vision.config.validation import (
    check_discovered_data,
    check_override_keys,
    did_you_mean,
    validate_config,
    validate_optim,
)
from lit_vision.errors import UserError
from tests.fakes import make_image_folder
from tests.helpers import CONF_DIR, compose_cfg


def error_of(overrides: list[str]) -> str:
    with pytest.raises(UserError) as info:
        validate_config(compose_cfg(overrides))
    return " ".join(str(info.value).split())


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data.batch_size=0"], "data.batch_size=0 is out of range: it must be at least 1"),
        (["data.batch_size=-3"], "data.batch_size=-3 is out of range"),
        (["data.batch_size=3.5"], "data.batch_size=3.5 is not a whole number"),
        (
            ["data.batch_size=4.0"],
            "data.batch_size=4.0 should be written as a whole number (samples per training batch): data.batch_size=4.",
        ),
        (["data.batch_size=true"], "data.batch_size=True is not a whole number"),
        (["data=cats", "data.num_workers=-1"], "data.num_workers=-1 is out of range: it must be at least 0"),
        (["data=cats", "data.eval_batch_size=0"], "data.eval_batch_size=0 is out of range"),
        (["data.image_size=0"], "data.image_size=0 is out of range"),
        (
            ["data.val_fraction=1.0"],
            "data.val_fraction=1.0 is out of range: it must be from 0 to 1 (excluded)",
        ),
        (["data.test_fraction=-0.1"], "data.test_fraction=-0.1 is out of range"),
        (
            ["optim.lr=1e-3x"],
            "optim.lr='1e-3x' is not a positive number: give Adam's lr as one, e.g. optim.lr=0.001",
        ),
        (["optim.lr=0"], "optim.lr=0 is not a positive number"),
        (["optim.lr=-0.1"], "optim.lr=-0.1 is not a positive number"),
        (["optim.weight_decay=-1"], "optim.weight_decay=-1 is out of range: it must be at least 0"),
        (["optim.betas=[0.9,1.5]"], "optim.betas[1]=1.5 is out of range"),
        (["optim.betas=[0.9]"], "optim.betas=[0.9] must be a list of 2 numbers"),
        (["optim.amsgrad=maybe"], "optim.amsgrad='maybe' must be true or false"),
        (["optim=sgd", "optim.momentum=abc"], "optim.momentum='abc' is not a number"),
        (
            ["+optim.learning_rate=0.01"],
            "optim.learning_rate: Adam takes no argument 'learning_rate'. Did you mean optim.lr?",
        ),
        (["optim=sgd", "+optim.moment=0.5"], "Did you mean optim.momentum?"),
        (
            ["optim._target_=torch.optim.Adamm"],
            "optim._target_='torch.optim.Adamm' is not an optimizer class",
        ),
    ],
)
def test_a_bad_data_or_optim_value_is_named_with_its_fix(overrides, expected):
    assert expected in error_of(overrides)


def test_every_shipped_data_optim_and_experiment_config_passes():
    choices = [f"data={p.stem}" for p in sorted((CONF_DIR / "data").glob("*.yaml"))]
    choices += [f"optim={p.stem}" for p in sorted((CONF_DIR / "optim").glob("*.yaml"))]
    choices += [f"experiment={p.stem}" for p in sorted((CONF_DIR / "experiment").glob("*.yaml"))]
    for choice in choices:
        validate_config(compose_cfg([choice]))


def test_fused_auto_and_explicit_values_of_real_arguments_pass():
    validate_optim(
        {"_target_": "torch.optim.SGD", "lr": 0.1, "fused": "auto", "nesterov": True, "momentum": 0.9}
    )
    validate_optim({"_target_": "torch.optim.AdamW", "lr": 1, "betas": [0.0, 0.5], "fused": None})


@pytest.mark.parametrize(
    ("name", "candidates", "expected"),
    [
        ("learning_rate", ["lr", "weight_decay"], "lr"),
        ("batchsize", ["batch_size", "num_workers"], "batch_size"),
        ("max_epoch", ["max_epochs", "min_epochs"], "max_epochs"),
        ("zzz", ["lr", "betas"], None),
        ("learning_rate", ["alpha"], None),  # a synonym only when its key exists
    ],
)
def test_did_you_mean(name, candidates, expected):
    assert did_you_mean(name, candidates) == expected


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["optim.learning_rate=0.01"],
            "optim.learning_rate: optim has no key 'learning_rate'. Did you mean optim.lr?",
        ),
        (["data=cats", "data.img_size=64"], "Did you mean data.image_size?"),
        (["trainer.max_epoch=3"], "Did you mean trainer.max_epochs?"),
    ],
)
def test_a_mistyped_command_line_key_gets_did_you_mean(argv, expected):
    with pytest.raises(UserError) as info:
        check_override_keys(["train.py", *argv])
    assert expected in " ".join(str(info.value).split())


@pytest.mark.parametrize(
    "argv",
    [
        ["optim.lr=0.1", "data.batch_size=8"],
        ["-m", "optim.lr=0.1,0.01"],  # a sweep: left to Hydra
        ["--help"],
        ["data=no_such_data"],  # Hydra's own message lists the options
    ],
)
def test_command_lines_the_key_check_leaves_alone(argv):
    check_override_keys(["train.py", *argv])


def test_a_one_class_classification_set_is_refused_naming_the_folder(tmp_path):
    cfg = compose_cfg(["data=image_folder", f"data.root={tmp_path / 'pets'}"])
    OmegaConf.update(cfg, "data.num_classes", 1)
    with pytest.raises(
        UserError, match=r"data\.num_classes is 1 in data\.root=.*pets: classification needs at least two"
    ):
        check_discovered_data(cfg)
    OmegaConf.update(cfg, "data.num_classes", 2)
    check_discovered_data(cfg)


def test_skipping_every_training_image_of_a_class_is_warned_by_name(tmp_path, caplog):
    from lit_vision.data.image_folder import ImageFolderDataModule

    root = make_image_folder(tmp_path / "flowers", per_class={"train": 3, "valid": 2}, size=(20, 24))
    for path in (root / "train" / "rose").iterdir():
        path.write_bytes(b"not an image")
    dm = ImageFolderDataModule(
        root=str(root), image_size=16, eval_resize=16, num_workers=0, on_bad_sample="skip"
    )
    with caplog.at_level(logging.WARNING, logger="lit_vision"):
        dm.setup("fit")
    emptied = [r.getMessage() for r in caplog.records if "No training image is left" in r.getMessage()]
    assert len(emptied) == 1 and "'rose'" in emptied[0] and "'daisy'" not in emptied[0]


def test_skipping_some_images_of_a_class_gives_no_empty_class_warning(tmp_path, caplog):
    from lit_vision.data.image_folder import ImageFolderDataModule

    root = make_image_folder(tmp_path / "flowers", per_class={"train": 3, "valid": 2}, size=(20, 24))
    Path(sorted((root / "train" / "rose").iterdir())[0]).write_bytes(b"not an image")
    dm = ImageFolderDataModule(
        root=str(root), image_size=16, eval_resize=16, num_workers=0, on_bad_sample="skip"
    )
    with caplog.at_level(logging.WARNING, logger="lit_vision"):
        dm.setup("fit")
    assert not any("No training image is left" in r.getMessage() for r in caplog.records)
