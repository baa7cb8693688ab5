"""Hydra plugin of lit_vision: the resumable, prunable Optuna sweeper (``hydra/sweeper=lit_optuna``).

Hydra only instantiates sweepers that live in the ``hydra_plugins`` namespace package; this class is the
registration, the work is done in :mod:`lit_vision.runs.optuna_search` (imported when a sweep starts, so
Hydra's plugin scan at every start-up stays cheap).
"""

from __future__ import annotations

from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper


class ResumableOptunaSweeper(OptunaSweeper):
    """hydra-optuna-sweeper's ``OptunaSweeper`` with a study total ``n_trials``, resumed trials and ``pruner``."""

    def __init__(self, pruner: Any = None, **kwargs: Any) -> None:
        from lit_vision.runs.optuna_search import ResumableOptunaSweeperImpl

        self.sweeper = ResumableOptunaSweeperImpl(pruner=pruner, **kwargs)
