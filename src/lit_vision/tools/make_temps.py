"""Write the tutorial-style temperature table (``temps.csv``) built from vega_datasets' seattle-weather.

    python -m lit_vision.tools.make_temps OUT.csv [--window-days 7] [--train-years 2012 2013 2014]

Columns: year, month, day, week, temp_2, temp_1, average, actual (degrees Fahrenheit). ``average`` uses
only the training years (a row of a training year leaves its own year out); see
:mod:`lit_vision.data.temps` for the construction. ``data=temps`` builds the same file by itself when
``data.path`` is null.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lit_vision.data.temps import TRAIN_YEARS, WINDOW_DAYS, write_temps_csv


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse the arguments, write the CSV, print a one-line summary."""
    parser = argparse.ArgumentParser(
        prog="python -m lit_vision.tools.make_temps", description=__doc__.split("\n")[0]
    )
    parser.add_argument("out", type=Path, help="the CSV file to write")
    parser.add_argument(
        "--window-days", type=int, default=WINDOW_DAYS, help="half-width of the calendar window of `average`"
    )
    parser.add_argument(
        "--train-years",
        type=int,
        nargs="+",
        default=list(TRAIN_YEARS),
        help="years `average` is computed from",
    )
    args = parser.parse_args(argv)
    path = write_temps_csv(args.out, window_days=args.window_days, train_years=args.train_years)
    rows = sum(1 for _ in path.open()) - 1
    print(f"wrote {rows} rows to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
