"""Benchmark suite behind ``make bench`` (``python -m bench``).

Each case is a module in this package exposing ``run(quick: bool) -> list[dict]``; every returned row
carries the device, the settings and a ratio measured in the same run. Results merge into
``bench/results.json`` (keyed by case, so running one case keeps the others) and are rendered into
``bench/results.md`` and the README between the ``<!-- bench:start -->`` / ``<!-- bench:end -->`` marks.
"""

CASES: dict[str, str] = {
    # case name -> module in bench; cases are added by the modules that own them. `make bench`
    # runs them in this order (the issue-9 speed cases first), except EXTRA_CASES.
    "mnist_vs_plain": "mnist_vs_plain",
    "resnet_vs_plain": "resnet_vs_plain",
    "precision": "precision",
    "data_path": "data_path",
    "time_to_accuracy": "time_to_accuracy",
    "cifar10_fast": "cifar10_fast",
    "monitoring": "monitoring",
    "segmentation_quality": "segmentation_quality",
    "cats81_cv": "cats81_cv",
    "regression_temps": "regression_temps",
    "regression_temps_cv": "regression_temps_cv",
    "data_loading": "data_loading",
    "speed": "speed",
    "predict_speed": "predict_speed",
}

# Run only when named (`--case speed`) or with `--all`: longer variants of what the default cases cover
# (`speed`: ResNet-18 epochs per precision/layout/compile setting, covered per model family by `precision`;
# `data_loading`: loader vs in-memory epochs, covered by `data_path`; `regression_temps_cv`: how the temps
# recipe was chosen), kept out of `make bench`'s 15 minutes.
EXTRA_CASES: frozenset[str] = frozenset({"speed", "data_loading", "regression_temps_cv"})
