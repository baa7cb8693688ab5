"""A data folder the user names that does not exist is an error naming it: never created, never filled with
an offline sample (only the project's default data folder may receive one). Segmentation roots (data=cats,
segmentation_folder) are covered in tests/test_segmentation_data.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

from lit_vision.errors import UserError, find_user_error
from tests.helpers import compose_cfg

# data option -> the key that names its folder or file
NAMED_ROOTS = {
    "mnist": "data.root",
    "fashion_mnist": "data.root",
    "cifar10": "data.root",
    "cifar100": "data.root",
    "flowers": "data.root",
    "image_folder": "data.root",
    "image_list": "data.root",
    "image_regression": "data.root",
    "temps": "data.data_dir",
    "tabular": "data.path",
}


def load(cfg) -> None:
    """What a run does with the DataModule before training: build it, prepare and set up its data."""
    try:
        datamodule = instantiate(cfg.data)
        if hasattr(datamodule, "discover"):
            datamodule.discover()
        datamodule.prepare_data()
        datamodule.setup("fit")
    except Exception as exc:
        raise find_user_error(exc) or exc from None


@pytest.mark.parametrize("option", sorted(NAMED_ROOTS))
def test_a_mistyped_data_folder_is_an_error_naming_it(option, tmp_path):
    key = NAMED_ROOTS[option]
    typo = tmp_path / "photos" / "misspelt"
    (tmp_path / "photos").mkdir()
    cfg = compose_cfg([f"data={option}", f"{key}={typo}", f"paths.data_dir={tmp_path / 'data'}"], tmp_path)
    with pytest.raises(UserError) as refused:
        load(cfg)
    assert f"{key}={typo}" in " ".join(str(refused.value).split())
    assert not typo.exists()  # nothing created or written there
    assert list((tmp_path / "photos").iterdir()) == []


def test_the_embedded_temperature_table_goes_only_to_the_default_or_an_existing_folder(tmp_path):
    default = tmp_path / "data"  # a fresh clone: the project's data folder does not exist yet
    load(compose_cfg(["data=temps", f"paths.data_dir={default}"], tmp_path))
    assert list((default / "temps").glob("seattle_temps_window*.csv"))

    mine = tmp_path / "mine"
    mine.mkdir()
    load(compose_cfg(["data=temps", f"data.data_dir={mine}", f"paths.data_dir={default}"], tmp_path))
    assert list((mine / "temps").glob("seattle_temps_window*.csv"))


def test_a_named_folder_without_the_sample_keeps_the_error_even_with_the_default_present(tmp_path):
    default = tmp_path / "data"
    load(compose_cfg(["data=temps", f"paths.data_dir={default}"], tmp_path))
    typo = Path(f"{default}s")
    with pytest.raises(UserError, match=r"data.data_dir=.*/datas does not exist"):
        load(compose_cfg(["data=temps", f"data.data_dir={typo}", f"paths.data_dir={default}"], tmp_path))
    assert not typo.exists()
