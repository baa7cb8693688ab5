"""Tabular regression from a CSV file: one-hot categorical columns, standardised numeric columns.

- :mod:`.csv_io`: reading a CSV and checking its columns (errors name the file, column and lines);
- :mod:`.preprocessor`: :class:`TabularPreprocessor`, the row preparation fitted on the training split
  that travels in checkpoints as a plain dict (``data_info``);
- :mod:`.splitting`: which rows are train, val and test;
- :mod:`.datamodule`: :class:`TabularDataModule` (``data=tabular``), the three put together.

The names below are re-exported so ``from lit_vision.data.tabular import X`` and the configs'
``_target_: lit_vision.data.tabular.TabularDataModule`` (also in run folders written before the split)
keep working.
"""

from lit_vision.data.tabular.csv_io import (
    MAX_REPORTED,
    as_list,
    describe_rows,
    line_of,
    numeric_column,
    parse_dates,
    read_csv,
    require_columns,
)
from lit_vision.data.tabular.datamodule import MISSING_POLICIES, TabularDataModule
from lit_vision.data.tabular.preprocessor import UNKNOWN_POLICIES, TabularPreprocessor
from lit_vision.data.tabular.splitting import STAGES, SplitRule, split_table

__all__ = [
    "MAX_REPORTED",
    "MISSING_POLICIES",
    "STAGES",
    "UNKNOWN_POLICIES",
    "SplitRule",
    "TabularDataModule",
    "TabularPreprocessor",
    "as_list",
    "describe_rows",
    "line_of",
    "numeric_column",
    "parse_dates",
    "read_csv",
    "require_columns",
    "split_table",
]
