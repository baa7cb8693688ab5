"""Benchmark suite behind ``make bench`` (``python -m bench``).

Each case is a module in this package exposing ``run(quick: bool) -> list[dict]``; every returned row
carries the device, the settings and a ratio measured in the same run. The cases that compare lit_vision
with a plain PyTorch loop only declare their recipe and loop; ``bench.vs_plain`` runs and reports them all.
Results merge into ``bench/results.json`` (keyed by case, so running one case keeps the others) and are
rendered into ``bench/results.md``; nothing else is written.
"""

CASES: dict[str, str] = {
    # case name -> module in bench. `make bench` runs them in this order, except EXTRA_CASES.
    "mnist_vs_plain": "mnist_vs_plain",
    "resnet_vs_plain": "resnet_vs_plain",
    "precision": "precision",
    "data_path": "data_path",
    "time_to_accuracy": "time_to_accuracy",
    "fashion_mnist_time_to_accuracy": "fashion_mnist_time_to_accuracy",
    "fashion_mnist": "fashion_mnist",
    "cifar10_photos": "cifar10_photos",
    "cifar10_fast": "cifar10_fast",
    "monitoring": "monitoring",
    "segmentation_quality": "segmentation_quality",
    "cats81_cv": "cats81_cv",
    "regression_temps": "regression_temps",
    "regression_temps_cv": "regression_temps_cv",
    "data_loading": "data_loading",
    "speed": "speed",
    "predict_speed": "predict_speed",
    "startup": "startup",
    "cnn_vs_best_plain": "cnn_vs_best_plain",
    "step_cost": "step_cost",
}

# Run only when named (`--case speed`) or with `--all`: longer variants of what the default cases cover
# (`speed`: ResNet-18 epochs per precision/layout/compile setting, covered per model family by `precision`;
# `data_loading`: loader vs in-memory epochs, covered by `data_path`; `regression_temps_cv`: how the temps
# recipe was chosen).
EXTRA_CASES: frozenset[str] = frozenset({"speed", "data_loading", "regression_temps_cv"})
