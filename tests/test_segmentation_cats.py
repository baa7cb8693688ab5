"""The offline default of data=cats: real cat photos shipped in the package (cats81 subset, Apache-2.0),
read in place when the default folder holds no data; a data.root the user names must exist (issue #17
point 6); the asset rebuilds from cats81, whose noisy JPEG masks data=cats reads as they are."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lit_vision.data.segmentation import CatsDataModule
from lit_vision.data.segmentation.masks import read_mask
from lit_vision.data.segmentation.offline_cats import (
    LONG_SIDE,
    SHIPPED_IDS,
    build_cats_asset,
    shipped_cats_root,
)
from lit_vision.errors import UserError
from tests.fakes.segmentation import disc_mask, make_images_masks_dataset, write_jpeg_mask

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LIT_VISION_SHARED_DATA", REPO.parent / "shared" / "data"))


def test_shipped_cats_are_real_varied_photos_with_their_licence():
    root = shipped_cats_root()
    images = sorted((root / "images").iterdir())
    masks = sorted((root / "masks").iterdir())
    assert len(images) == len(masks) == len(SHIPPED_IDS) >= 40
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 3 * 2**20
    licence = (root / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    readme = (root / "README.md").read_text()
    assert "ardamavi/Cat-Segmentation" in readme and "Apache License 2.0" in readme
    digests, sizes = set(), set()
    for path in images:
        with Image.open(path) as image:
            assert max(image.size) <= 256 and image.mode == "RGB"
            sizes.add(image.size)
            digests.add(hashlib.sha1(np.asarray(image.resize((16, 16))).tobytes()).hexdigest())
    assert len(digests) == len(images) and len(sizes) >= 10  # distinct photos, not crops of one
    for path in masks:
        values = np.asarray(Image.open(path))
        assert set(np.unique(values).tolist()) == {0, 255}
        assert 0.02 < (values == 255).mean() < 0.98, path.name


def test_data_cats_without_data_trains_on_the_shipped_cats(tmp_path, caplog):
    default = tmp_path / "data" / "cats"
    dm = CatsDataModule(root=default, default_root=default, image_size=32, split_seed=0)
    with caplog.at_level(logging.INFO, logger="lit_vision"):
        dm.setup()
    assert dm.root == shipped_cats_root() and not default.exists()  # read in place, nothing written
    assert "offline sample" in caplog.text and "cats81" in caplog.text and "Apache-2.0" in caplog.text
    assert (
        f"Data: {shipped_cats_root()} (images_masks layout): {len(SHIPPED_IDS)} annotated images"
        in caplog.text
    )
    assert dm.class_names == ["background", "cat"]
    assert sum(len(d) for d in dm.datasets.values()) == len(SHIPPED_IDS)
    cat_share = [
        float(dm.datasets["train"].raw(i)[1].float().mean()) for i in range(len(dm.datasets["train"]))
    ]
    assert min(cat_share) > 0.02 and max(cat_share) < 0.98 and np.std(cat_share) > 0.05
    default.mkdir(parents=True)  # an empty default folder still means "no data"
    again = CatsDataModule(root=default, default_root=default)
    again.discover()
    assert again.root == shipped_cats_root()


def test_data_cats_default_folder_with_data_is_used(tmp_path):
    default = tmp_path / "cats"
    make_images_masks_dataset(default)
    dm = CatsDataModule(root=default, default_root=default, image_size=32)
    dm.discover()
    assert dm.root == default and len(dm.items) == 5 and dm.class_names == ["background", "cat"]


def test_a_data_root_the_user_names_must_exist(tmp_path):
    """issue #17 point 6: a mistyped data.root is an error naming it, never filled with the sample."""
    typo = tmp_path / "photos" / "cat"
    dm = CatsDataModule(root=typo, default_root=tmp_path / "data" / "cats", sample_if_missing=True)
    with pytest.raises(UserError, match=rf"data.root={typo} does not exist"):
        dm.discover()
    assert not typo.exists() and not typo.parent.exists()


def test_data_cats_config_refuses_a_missing_root(tmp_path):
    from hydra.utils import instantiate

    from tests.helpers import compose_cfg

    cfg = compose_cfg(["model=unet", "data=cats", f"data.root={tmp_path / 'photos' / 'cat'}"])
    dm = instantiate(cfg.data)
    with pytest.raises(UserError, match=r"photos/cat does not exist"):
        dm.discover()
    default = instantiate(compose_cfg(["model=unet", "data=cats", f"paths.data_dir={tmp_path}"]).data)
    default.discover()
    assert default.root == shipped_cats_root() and not (tmp_path / "cats").exists()


def test_build_cats_asset_shrinks_photos_and_cleans_jpeg_masks(tmp_path):
    src = tmp_path / "cats81"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    truth = disc_mask(size=(300, 520), centre=(150, 260), radius=120)
    for n in (3, 70):
        Image.fromarray(np.full((300, 520, 3), 40 * n % 255, np.uint8)).save(src / "images" / f"cat.{n}.jpg")
        write_jpeg_mask(src / "masks" / f"cat.{n}.jpg", truth, quality=60)
    assert build_cats_asset(src, tmp_path / "out", ids=(3, 5)) == ["cat.3"]  # cat.70 is not asked for
    with Image.open(tmp_path / "out" / "images" / "cat.3.jpg") as photo:
        assert photo.size == (LONG_SIDE, round(300 * LONG_SIDE / 520))
    mask = np.asarray(Image.open(tmp_path / "out" / "masks" / "cat.3.png"))
    assert mask.shape == (148, 256) and set(np.unique(mask).tolist()) == {0, 255}
    assert (mask == 255).mean() == pytest.approx((truth == 1).mean(), abs=0.01)
    assert (tmp_path / "out" / "class_names.txt").read_text().split() == ["_background_", "cat"]


@pytest.mark.skipif(not (SHARED_DATA / "cats81").is_dir(), reason="no ../shared/data/cats81 beside the repo")
def test_shipped_masks_rebuild_exactly_from_cats81(tmp_path):
    build_cats_asset(SHARED_DATA / "cats81", tmp_path, ids=SHIPPED_IDS)
    for shipped in sorted((shipped_cats_root() / "masks").iterdir()):
        assert np.array_equal(
            np.asarray(Image.open(shipped)), np.asarray(Image.open(tmp_path / "masks" / shipped.name))
        )


@pytest.mark.skipif(not (SHARED_DATA / "cats81").is_dir(), reason="no ../shared/data/cats81 beside the repo")
def test_cats81_jpeg_masks_read_as_binary_cats(tmp_path):
    root = SHARED_DATA / "cats81"
    dm = CatsDataModule(root=root, default_root=tmp_path / "cats", image_size=32, cache=False)
    dm.discover()
    assert dm.layout == "images_masks" and len(dm.items) == 81 and dm.class_names == ["background", "cat"]
    for name in ("cat.0", "cat.11", "cat.47"):  # cat.11 / cat.47: the noisiest masks
        stored = np.asarray(Image.open(root / "masks" / f"{name}.jpg"))
        mask = read_mask(root / "masks" / f"{name}.jpg")
        assert set(np.unique(mask).tolist()) == {0, 1}
        assert np.array_equal(mask[stored < 32], np.zeros((stored < 32).sum(), np.uint8))
        assert np.array_equal(mask[stored > 223], np.ones((stored > 223).sum(), np.uint8))
