"""Benchmark suite behind ``make bench`` (``python -m lit_vision.bench``).

Each case is a module in this package exposing ``run(quick: bool) -> list[dict]``; every returned row
carries the device, the settings and a ratio measured in the same run. Results merge into
``bench/results.json`` (keyed by case, so running one case keeps the others) and are rendered into
``bench/results.md`` and the README between the ``<!-- bench:start -->`` / ``<!-- bench:end -->`` marks.
"""

CASES: dict[str, str] = {
    # case name -> module in lit_vision.bench; cases are added by the modules that own them
}
