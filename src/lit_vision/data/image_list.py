"""Image classification from index files: one ``relative/path.png label`` per line (the CIFAR-to-PNG
tutorial's ``train.txt`` / ``valid.txt``), paths relative to ``root``.

Blank lines and lines starting with ``#`` are skipped; the label is the last field, so paths may contain
spaces. Class names come from ``class_names``, else a names file (one name per line in label order;
``classes.txt`` next to the train index is used when present), else the label numbers.
``python -m lit_vision.tools.make_index ROOT`` writes such files from a folder tree.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from lit_vision.data.image_files import ImageFilesDataModule, Sample
from lit_vision.errors import UserError

log = logging.getLogger(__name__)

MAX_REPORTED = 5


def parse_index_file(path: Path, root: Path) -> list[Sample]:
    """Read one index file; every malformed line or missing image is collected, then reported at once."""
    samples, problems = [], []
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            origin = f"{path}:{number}"
            fields = line.rsplit(None, 1)
            if len(fields) != 2:
                problems.append(f"{origin}: expected 'relative/path.png label', got {line!r}")
                continue
            relative, label_text = fields
            try:
                label = int(label_text)
            except ValueError:
                problems.append(f"{origin}: the label {label_text!r} is not an integer (line {line!r})")
                continue
            image = relative if os.path.isabs(relative) else os.path.join(root, relative)
            if not os.path.isfile(image):
                problems.append(f"{origin}: {relative} does not exist (looked for {image})")
                continue
            samples.append(Sample(image, label, origin))
    if problems:
        more = f" (and {len(problems) - MAX_REPORTED} more problems)" if len(problems) > MAX_REPORTED else ""
        raise UserError(
            f"{len(problems)} bad line(s) in the index file {path}: {'; '.join(problems[:MAX_REPORTED])}{more}. "
            f"Each line must be an image path relative to data.root={root} and an integer label 0.."
            "num_classes-1; fix the lines (or set data.root so the paths resolve), or rewrite the files with "
            "`python -m lit_vision.tools.make_index`."
        )
    return samples


class ImageListDataModule(ImageFilesDataModule):
    """Classification from train/valid/test index files (see the module docstring)."""

    def __init__(
        self,
        root: str,
        train_index: str = "train.txt",
        val_index: str = "valid.txt",
        test_index: str | None = "test.txt",
        class_names_file: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(str(root)).expanduser()
        self.train_index = str(train_index)
        self.val_index = str(val_index)
        self.test_index = None if test_index in (None, "") else str(test_index)
        self.class_names_file = None if class_names_file in (None, "") else str(class_names_file)

    def _resolve(self, name: str) -> Path:
        path = Path(name).expanduser()
        return path if path.is_absolute() else self.root / path

    def find_samples(self) -> dict[str, list[Sample]]:
        if not self.root.is_dir():
            raise UserError(
                f"data.root={self.root} is not a folder. Set it to the folder the paths in the index files "
                "are relative to."
            )
        samples: dict[str, list[Sample]] = {}
        for stage, name, required in (
            ("train", self.train_index, True),
            ("val", self.val_index, True),
            ("test", self.test_index, False),
        ):
            if name is None:
                continue
            path = self._resolve(name)
            if not path.is_file():
                if required:
                    raise UserError(
                        f"index file {path} (data.{stage}_index) does not exist. Write the index files with "
                        f"`python -m lit_vision.tools.make_index IMAGE_FOLDER --out {self.root}`, or set "
                        f"data.{stage}_index to the file's path (relative paths are taken from data.root)."
                    )
                log.info("No test index %s: testing on the validation split.", path)
                continue
            samples[stage] = parse_index_file(path, self.root)
            if not samples[stage]:
                raise UserError(f"index file {path} lists no images: add 'relative/path.png label' lines.")
        if self.class_names is None:
            self.class_names = self._read_class_names()
        return samples

    def _read_class_names(self) -> list[str] | None:
        if self.class_names_file is not None:
            path = self._resolve(self.class_names_file)
            if not path.is_file():
                raise UserError(
                    f"data.class_names_file {path} does not exist: give a text file with one class name "
                    "per line in label order, or null."
                )
        else:
            path = self._resolve(self.train_index).parent / "classes.txt"
            if not path.is_file():
                return None
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return names or None

    def _check_labels(self, samples) -> None:
        if self.num_classes is None and self.class_names is not None:
            labelled = max(s.label for part in samples.values() for s in part) + 1
            if labelled > len(self.class_names):
                raise UserError(
                    f"labels go up to {labelled - 1} but only {len(self.class_names)} class names are given "
                    "(data.class_names or the names file): add the missing names."
                )
        super()._check_labels(samples)
