"""What ``input=`` names: one image file, a folder of images (searched recursively), or a CSV whose
``file`` (or ``path`` / ``image`` / ``filename``) column lists image paths relative to the CSV's folder."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lit_vision.data.image_io import IMAGE_EXTENSIONS, is_ignored_name, is_image_name
from lit_vision.errors import UserError

PATH_COLUMNS = ("file", "path", "image", "filename")


@dataclass(frozen=True)
class InputImage:
    """One image to predict: its ``path`` on disk and the ``name`` written in outputs (relative to the
    input folder, or as listed)."""

    path: str
    name: str


def find_images(source: str | Path, exclude: Sequence[str | Path] = ()) -> list[InputImage]:
    """The images ``source`` names, sorted by name; UserError when there are none or it does not exist.

    Folders in ``exclude`` (e.g. the run's own output folder inside the input folder) are not searched.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise UserError(f"input={source}: no such file or folder.")
    if source.is_dir():
        images = _folder_images(source, {Path(p).expanduser().resolve() for p in exclude})
        where = f"folder {source}"
    elif source.suffix.lower() == ".csv":
        images = csv_images(source)
        where = f"CSV {source}"
    elif is_image_name(source.name):
        images = [InputImage(str(source), source.name)]
        where = str(source)
    else:
        raise UserError(
            f"input={source} is neither an image ({', '.join(IMAGE_EXTENSIONS)}), a folder of images nor a CSV "
            "with a file column."
        )
    if not images:
        raise UserError(f"input={source}: the {where} holds no image files ({', '.join(IMAGE_EXTENSIONS)}).")
    return images


def _folder_images(folder: Path, excluded: set[Path]) -> list[InputImage]:
    found = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(
            d
            for d in subdirs
            if not d.startswith(".") and not (excluded and Path(directory, d).resolve() in excluded)
        )
        # Plain string joins: pathlib costs ~15 us per file, noticeable for thousands of small images.
        relative = Path(directory).relative_to(folder).as_posix()
        prefix = "" if relative == "." else relative + "/"
        for name in files:
            if is_image_name(name) and not is_ignored_name(name):
                found.append(InputImage(os.path.join(directory, name), prefix + name))
    return sorted(found, key=lambda item: item.name)


def csv_images(path: Path) -> list[InputImage]:
    """Image paths from a CSV's path column (relative paths are taken from the CSV's folder)."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip() for f in (reader.fieldnames or [])]
        column = next((c for c in PATH_COLUMNS if c in fields), None)
        if column is None:
            raise UserError(
                f"{path}: an image-list CSV needs a column named one of {', '.join(PATH_COLUMNS)}; its header is "
                f"{fields}."
            )
        images = []
        for line, row in enumerate(reader, start=2):
            value = (row.get(column) or "").strip()
            if not value:
                raise UserError(f"{path}, line {line}: the {column} column is empty.")
            file = Path(value).expanduser()
            file = file if file.is_absolute() else path.parent / file
            images.append(InputImage(str(file), value))
    return images
