"""The cats81 cross-validation bench case: its folds and fold folders (the training runs are `make bench`)."""

from __future__ import annotations

from bench.cats81_cv import folds_of, link_subset, photo_stems


def test_folds_are_disjoint_cover_everything_and_depend_on_the_seed():
    stems = [f"cat.{i}" for i in range(81)]
    folds = folds_of(stems, 3, seed=0)
    assert [len(f) for f in folds] == [27, 27, 27]
    assert sorted(s for f in folds for s in f) == sorted(stems)
    assert not set(folds[0]) & set(folds[1])
    assert folds == folds_of(stems, 3, seed=0)
    assert folds != folds_of(stems, 3, seed=1)


def test_fold_folders_pair_images_and_masks_by_stem(tmp_path):
    root = tmp_path / "cats"
    for sub, ext in (("images", ".jpg"), ("masks", ".png")):
        (root / sub).mkdir(parents=True)
        for i in range(4):
            (root / sub / f"cat.{i}{ext}").write_bytes(b"x")
    (root / "images" / "unlabelled.jpg").write_bytes(b"x")
    assert photo_stems(root) == ["cat.0", "cat.1", "cat.2", "cat.3"]
    subset = link_subset(root, ["cat.1", "cat.3"], tmp_path / "fold")
    assert sorted(p.name for p in (subset / "images").iterdir()) == ["cat.1.jpg", "cat.3.jpg"]
    assert sorted(p.name for p in (subset / "masks").iterdir()) == ["cat.1.png", "cat.3.png"]
