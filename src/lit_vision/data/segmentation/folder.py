"""Finding image/annotation pairs in a segmentation folder (labelme JSON, VOC, or images/ + masks/) and
loading one.

Layouts:

- ``labelme``: ``*.json`` files (any depth) next to their images, with ``labels.txt`` in the root.
- ``voc``: ``JPEGImages/`` with ``SegmentationClassPNG/`` (labelme2voc's palette PNGs) or
  ``SegmentationClass/`` (VOC's palette PNGs, or labelme2voc's ``.npy`` arrays), masks named like their
  images; class names from ``class_names.txt`` or ``labels.txt`` when present.
- ``images_masks``: ``images/`` and ``masks/`` (any depth), paired by their path without the extension,
  any image format on either side (``images/cat.1.jpg`` + ``masks/cat.1.png``); every image needs a mask.

Masks are read under ``data.mask_threshold`` (``lit_vision.data.segmentation.masks``): class-index masks,
or binary 0/255 masks (PNG, or JPEG with compression noise). Any layout may carry split lists
``ImageSets/Segmentation/{train,val,test}.txt`` (one image id per line).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_vision.data.segmentation.images import IMAGE_SUFFIXES, ImageInfo, image_info, image_size, read_rgb
from lit_vision.data.segmentation.labelme import (
    check_labels,
    load_labelme_image,
    load_labelme_sample,
    read_labelme,
)
from lit_vision.data.segmentation.labels import (
    IGNORE_INDEX,
    LabelSet,
    discover_label_set,
    label_set_from_names,
    parse_labels_txt,
)
from lit_vision.data.segmentation.masks import read_mask
from lit_vision.data.validation import BadFileError
from lit_vision.errors import UserError

log = logging.getLogger("lit_vision")

LAYOUTS = ("auto", "labelme", "voc", "images_masks")
VOC_IMAGE_DIR = "JPEGImages"
IMAGES_DIR, MASKS_DIR = "images", "masks"
MASK_SUFFIXES = (*IMAGE_SUFFIXES, ".npy")
# How many file names an error or a log line lists before "and N more".
NAMES_SHOWN = 5
VOC_MASK_DIRS = ("SegmentationClassPNG", "SegmentationClass")
SPLIT_DIR = Path("ImageSets") / "Segmentation"
LABEL_FILES = ("labels.txt", "class_names.txt")


@dataclass(frozen=True)
class SegmentationItem:
    """One annotated image on disk. ``kind`` is "labelme" (annotation is a JSON) or "mask" (a mask file)."""

    name: str
    annotation: Path
    kind: str
    image: Path | None = None


def detect_layout(root: Path) -> str:
    """'voc' when ``root/JPEGImages`` exists, 'images_masks' when ``images/`` and ``masks/`` do, 'labelme'
    when JSON files exist; UserError otherwise."""
    if not root.is_dir():
        raise UserError(
            f"the data folder {root} does not exist. Set data.root to an existing folder: labelme JSON files "
            f"with their images, {IMAGES_DIR}/ + {MASKS_DIR}/, or a VOC layout (JPEGImages/ + "
            "SegmentationClassPNG/)."
        )
    if (root / VOC_IMAGE_DIR).is_dir():
        return "voc"
    if (root / IMAGES_DIR).is_dir() and (root / MASKS_DIR).is_dir():
        return "images_masks"
    if any(root.rglob("*.json")):
        return "labelme"
    raise UserError(
        f"the data folder {root} holds neither labelme annotations (*.json next to their images), nor "
        f"{IMAGES_DIR}/ + {MASKS_DIR}/ folders, nor a VOC layout ({VOC_IMAGE_DIR}/ + SegmentationClassPNG/). "
        "Annotate the images with labelme, or point data.root at the right folder."
    )


NO_ITEMS_FIX = {
    "voc": "Put masks named like their images in SegmentationClassPNG/.",
    "labelme": "Save labelme annotations (*.json) next to their images.",
    "images_masks": f"Put the photos in {IMAGES_DIR}/ and their masks, named like them, in {MASKS_DIR}/.",
}


def scan_folder(
    root: Path, layout: str = "auto", on_missing_mask: str = "error", whole: bool = False
) -> tuple[str, list[SegmentationItem]]:
    """List the annotated images of ``root``: ``(layout, items sorted by name)``. In the images_masks
    layout an image without a mask is a UserError naming it, or (``on_missing_mask="skip"``) left out.
    A VOC layout with split lists gives the listed images only, unless ``whole`` asks for every pair."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise UserError(f"data.layout must be one of {list(LAYOUTS)}, got {layout!r}.")
    if layout == "auto":
        layout = detect_layout(root)
    elif not root.is_dir():
        detect_layout(root)  # raises the missing-folder message
    if layout == "voc":
        items = _scan_voc(root, whole)
    elif layout == "images_masks":
        items = _scan_images_masks(root, on_missing_mask)
    else:
        items = _scan_labelme(root)
    if not items:
        raise UserError(
            f"the data folder {root} ({layout} layout) has no annotated images. {NO_ITEMS_FIX[layout]}"
        )
    return layout, items


def files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """``{path relative to folder without its extension: path}`` of the files with ``suffixes`` (any
    depth, hidden files skipped); UserError when two files share a name but for the extension."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.suffix.lower() not in suffixes or any(p.startswith(".") for p in relative.parts):
            continue
        if not path.is_file():
            continue
        key = relative.with_suffix("").as_posix()
        if key in found:
            raise UserError(
                f"{found[key]} and {path} have the same name but for the extension, so which one pairs with "
                f"the other folder is ambiguous. Rename or remove one of them."
            )
        found[key] = path
    return found


def _listed(paths: list[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:NAMES_SHOWN])
    return shown + (f" and {len(paths) - NAMES_SHOWN} more" if len(paths) > NAMES_SHOWN else "")


def _scan_images_masks(root: Path, on_missing_mask: str = "error") -> list[SegmentationItem]:
    images = files_by_stem(root / IMAGES_DIR, IMAGE_SUFFIXES)
    masks = files_by_stem(root / MASKS_DIR, MASK_SUFFIXES)
    unmasked = [images[name] for name in sorted(set(images) - set(masks))]
    if unmasked and on_missing_mask == "error":
        first = unmasked[0].relative_to(root / IMAGES_DIR).with_suffix("")
        raise UserError(
            f"{_listed(unmasked)}: no mask in {root / MASKS_DIR} ({len(unmasked)} of {len(images)} images). "
            f"Each image needs a mask with the same name, any extension (e.g. {root / MASKS_DIR / first}.png); "
            "add the missing masks, move those images out, or set data.on_bad_sample=skip to leave them out."
        )
    if unmasked:
        log.warning(
            "Leaving out %d image(s) without a mask (data.on_bad_sample=skip): %s",
            len(unmasked),
            _listed(unmasked),
        )
    orphans = [masks[name] for name in sorted(set(masks) - set(images))]
    if orphans:
        log.warning("%d mask(s) without an image are not used: %s", len(orphans), _listed(orphans))
    return [
        SegmentationItem(name=name, annotation=masks[name], kind="mask", image=images[name])
        for name in sorted(set(images) & set(masks))
    ]


def _scan_labelme(root: Path) -> list[SegmentationItem]:
    items = []
    for path in sorted(root.rglob("*.json")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        name = path.relative_to(root).with_suffix("").as_posix()
        items.append(SegmentationItem(name=name, annotation=path, kind="labelme"))
    return items


def _voc_mask_dir(root: Path) -> Path:
    for name in VOC_MASK_DIRS:
        if (root / name).is_dir():
            return root / name
    raise UserError(
        f"{root}: a VOC layout needs masks in {VOC_MASK_DIRS[0]}/ (or {VOC_MASK_DIRS[1]}/) next to "
        f"{VOC_IMAGE_DIR}/. Run `python -m lit_vision.tools.labelme2voc` on your labelme folder, or add the masks."
    )


def _scan_voc(root: Path, whole: bool = False) -> list[SegmentationItem]:
    image_dir = root / VOC_IMAGE_DIR
    mask_dir = _voc_mask_dir(root)
    images = {p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = {p.stem: p for p in sorted(mask_dir.iterdir()) if p.suffix.lower() in (".png", ".npy")}
    listed = {} if whole else split_lists(root)
    if listed:
        wanted = sorted({name for names in listed.values() for name in names})
        for name in wanted:
            if name not in images or name not in masks:
                missing = f"{image_dir}/{name}.*" if name not in images else f"{mask_dir}/{name}.png"
                raise UserError(
                    f"{root / SPLIT_DIR}: image id {name!r} is listed but {missing} does not exist. Remove the "
                    "line from the split list or add the file."
                )
    else:
        wanted = sorted(set(images) & set(masks))
        unmatched = [images[name] for name in sorted(set(images) - set(masks))]
        if unmatched:
            log.info(
                "%s: %d image(s) without a mask in %s are not used: %s",
                root,
                len(unmatched),
                mask_dir.name,
                _listed(unmatched),
            )
    return [SegmentationItem(name=n, annotation=masks[n], kind="mask", image=images[n]) for n in wanted]


def split_lists(root: Path) -> dict[str, list[str]]:
    """``{split: image ids}`` from ``ImageSets/Segmentation/*.txt`` (train, val, test, trainval)."""
    folder = Path(root) / SPLIT_DIR
    out: dict[str, list[str]] = {}
    if not folder.is_dir():
        return out
    for split in ("train", "val", "test", "trainval"):
        path = folder / f"{split}.txt"
        if path.is_file():
            out[split] = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    return out


def find_label_set(
    root: Path,
    layout: str,
    items: list[SegmentationItem],
    labels: str | Path | None = None,
    class_names: list[str] | None = None,
    mask_threshold: str | int = "auto",
    fallback_names: Sequence[str] | None = None,
) -> tuple[LabelSet, str]:
    """The class list and where it came from: ``labels`` file, ``class_names``, a file in root, or the data
    (labelme labels; for masks, ``fallback_names`` when the mask values fit them, else generic names)."""
    if labels is not None:
        path = Path(labels)
        path = path if path.is_absolute() or path.exists() else Path(root) / path
        if not path.is_file():
            raise UserError(f"data.labels is {labels}, which does not exist. Point it at your labels.txt.")
        return parse_labels_txt(path), str(path)
    if class_names:
        return label_set_from_names(class_names, source="data.class_names"), "data.class_names"
    for name in LABEL_FILES:
        if (Path(root) / name).is_file():
            return parse_labels_txt(Path(root) / name), str(Path(root) / name)
    if layout == "labelme":
        used = set().union(*(read_labelme(item.annotation).labels for item in items))
        label_set = discover_label_set(used)
        log.info("No labels.txt in %s: classes taken from the annotations: %s", root, list(label_set.names))
        return label_set, "the annotations' labels"
    highest = max(_max_class_value(item.annotation, mask_threshold) for item in items)
    if fallback_names is not None and highest < len(fallback_names):
        return LabelSet(tuple(fallback_names)), "the default class names"
    names = ("_background_", *(f"class_{i}" for i in range(1, max(highest, 1) + 1)))
    log.info("No class_names.txt in %s: %d classes found in the masks.", root, len(names))
    return LabelSet(names), "the mask values"


def _max_class_value(path: Path, mask_threshold: str | int = "auto") -> int:
    mask = read_mask(path, mask_threshold)
    values = mask[mask != IGNORE_INDEX]
    return int(values.max()) if values.size else 0


def check_item(item: SegmentationItem, label_set: LabelSet, source: str) -> ImageInfo:
    """Cheap checks before training (labels, point counts, complete files, sizes from headers); returns
    the image's ``(H, W, mode)`` (mode None for labelme's embedded imageData)."""
    if item.kind == "labelme":
        annotation = read_labelme(item.annotation)
        check_labels(annotation, label_set, source)
        mode = None
        if annotation.image_path is not None and annotation.image_path.is_file():
            height, width, mode = image_info(annotation.image_path)
        elif annotation.image_data:
            height, width = load_labelme_image(annotation).shape[:2]  # decodes and checks imageHeight/Width
        else:
            raise UserError(
                f"{item.annotation}: its image {annotation.image_path} does not exist and the file embeds no "
                "imageData. Put the image next to the JSON file or fix 'imagePath'."
            )
        if annotation.height is not None and (annotation.height, annotation.width) != (height, width):
            raise UserError(
                f"{item.annotation}: imageHeight x imageWidth is {annotation.height} x {annotation.width} but "
                f"the image is {height} x {width}. Re-open the image in labelme and save the annotation again."
            )
        return ImageInfo(height, width, mode)
    height, width, mode = image_info(item.image)
    mask_hw = _mask_size(item.annotation)
    if mask_hw != (height, width):
        raise UserError(
            f"{item.annotation}: the mask is {mask_hw[0]} x {mask_hw[1]} (H x W) but its image {item.image} is "
            f"{height} x {width}. A mask must have its image's size: regenerate it from the annotation."
        )
    return ImageInfo(height, width, mode)


def _mask_size(path: Path) -> tuple[int, int]:
    if path.suffix.lower() == ".npy":
        try:
            shape = np.load(path, mmap_mode="r").shape
        except Exception as exc:  # a damaged .npy header
            raise BadFileError(
                f"{path}: cannot read the mask array ({exc}); regenerate it.", path=path
            ) from None
        if len(shape) != 2:
            raise UserError(f"{path}: a mask array must be 2-D (H, W), got shape {shape}.")
        return int(shape[0]), int(shape[1])
    return image_size(path, exif_orientation=False)  # masks are used as stored


def load_item(
    item: SegmentationItem, label_set: LabelSet, source: str, mask_threshold: str | int = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Decode one item: ``(image (H, W, 3) uint8, mask (H, W) uint8 with IGNORE_INDEX for ignored)``."""
    if item.kind == "labelme":
        return load_labelme_sample(item.annotation, label_set, source)
    image = read_rgb(item.image)
    mask = read_mask(item.annotation, mask_threshold)
    if mask.shape != image.shape[:2]:
        raise UserError(
            f"{item.annotation}: the mask is {mask.shape[0]} x {mask.shape[1]} (H x W) but its image "
            f"{item.image} is {image.shape[0]} x {image.shape[1]}. Regenerate the mask at the image's size."
        )
    check_mask_values(item.annotation, mask, label_set, source)
    return image, mask


def check_mask_values(path: Path, mask: np.ndarray, label_set: LabelSet, source: str) -> None:
    """Raise UserError when ``mask`` holds a value that is neither a class index nor IGNORE_INDEX."""
    values = np.unique(mask)
    bad = [int(v) for v in values if v >= label_set.num_classes and v != IGNORE_INDEX]
    if bad:
        raise UserError(
            f"{path}: mask value(s) {bad} are not classes of {source} ({label_set.num_classes} classes: "
            f"{list(label_set.names)}, values 0..{label_set.num_classes - 1}, {IGNORE_INDEX} = ignore). Add the "
            "missing classes to the class list or fix the mask (for a binary mask with other grey levels, set "
            "data.mask_threshold to the level from which a pixel is the class, e.g. 128)."
        )
