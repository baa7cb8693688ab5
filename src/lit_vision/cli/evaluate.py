"""Evaluate a checkpoint on the test split: ``python -m lit_vision.cli.evaluate ckpt=PATH [overrides]``.

The same as ``python train.py train=false ckpt_path=PATH [overrides]``: the task (model class, weights,
hyperparameters) is rebuilt from the checkpoint alone; the data come from the config. When the checkpoint
sits in a run folder (``<run>/checkpoints/*.ckpt``), that run's overrides are applied first, so it is
evaluated on the data it was trained with; any override given here wins (``data=... data.root=...`` to
evaluate on other data). Results go to a new run folder: ``metrics.json`` with the ``test/*`` metrics.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import hydra

from lit_vision.cli.train import task
from lit_vision.config.compose import config_dir
from lit_vision.errors import UserError
from lit_vision.runs.run_folder import argv_with_run_overrides
from lit_vision.utils.reporting import report_user_error

OPTIONS = """
Options (key=value):

  ckpt=...              (required) the checkpoint to test (e.g. outputs/<date>/<time>/checkpoints/last.ckpt);
                        its run's overrides are applied first when it sits in a run folder
  data=<option>         other data to test on (digits, image_folder, cats, tabular...), with its keys:
                        data.root=..., data.batch_size=..., data.num_workers=...
  trainer.*             any Lightning Trainer argument, e.g. trainer.accelerator=gpu,
                        trainer.precision=bf16-mixed, trainer.limit_test_batches=10
  logger=<option>       where the test metrics go besides metrics.json: tensorboard, csv, many, none
  tta=true              average over flipped copies (tta_flips=[h,v]) and, for segmentation, rescaled
                        ones (tta_scales=[0.75,1.0,1.25]); the same options as lit-predict
  tiling=true           segmentation: sliding windows over each test photo at its own size, scored
                        there (tile=, stride=, tile_window=, tile_batch_size=); full_size=true alone
                        scores at the photos' size with the net seeing them resized (the baseline)
  callbacks=<option>    the test-time pictures (confusion matrix, segmentation grids...): default, none
  print_config=true     print the whole resolved config (always saved in <run>/config.yaml)

Any other train.py override works too (python train.py --help lists the groups); the model itself always
comes from the checkpoint.
"""


# lit-predict's test-time keys, taken here without their `test_time.` prefix (conf/train.yaml)
TEST_TIME_KEYS = (
    "tta",
    "tta_flips",
    "tta_scales",
    "tiling",
    "tile",
    "stride",
    "tile_window",
    "tile_batch_size",
    "full_size",
)


def rename(argument: str) -> str:
    """``ckpt=`` -> ``ckpt_path=``; a test-time key (``tta=true``) -> ``test_time.tta=true``."""
    key, equals, value = argument.partition("=")
    if not equals:
        return argument
    if key == "ckpt":
        return f"ckpt_path={value}"
    if key in TEST_TIME_KEYS:
        return f"test_time.{key}={value}"
    return argument


def evaluate_argv(argv: Sequence[str]) -> list[str]:
    """``ckpt=PATH`` -> ``ckpt_path=PATH``, ``tta=...`` (and the other test-time keys) ->
    ``test_time.tta=...``, the run's overrides first, and ``train=false`` last."""
    argv = [argv[0], *(rename(a) for a in argv[1:])]
    if not any(a.startswith(("ckpt_path=", "--help", "-h", "--hydra-help")) for a in argv[1:]):
        raise SystemExit("usage: python -m lit_vision.cli.evaluate ckpt=PATH [data=... other overrides]")
    return [*argv_with_run_overrides(argv), "train=false"]


def main() -> None:
    """Entry point of ``lit-evaluate`` / ``python -m lit_vision.cli.evaluate``."""
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print((__doc__ or "").strip() + "\n" + OPTIONS)
        raise SystemExit(0)
    sys.argv = evaluate_argv(sys.argv)
    try:
        conf = str(config_dir())
    except UserError as exc:
        report_user_error(exc)
    hydra.main(version_base="1.3", config_path=conf, config_name="train")(task)()


if __name__ == "__main__":
    main()
