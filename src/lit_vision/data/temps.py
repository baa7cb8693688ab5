"""The tutorial's temperature table (``temps.csv``), rebuilt offline from real Seattle weather.

Schema (the tutorial's): ``year, month, day, week, temp_2, temp_1, average, actual[, friend]``; ``actual``
is the day's maximum temperature in degrees Fahrenheit, ``temp_1`` / ``temp_2`` the maxima one and two days
before, ``average`` the historical mean maximum of that calendar day and ``week`` the weekday name.

The embedded default is built by :func:`build_temps_frame` from vega_datasets' ``seattle-weather`` (daily
maxima measured at Seattle, 2012-2015, in Celsius, converted to Fahrenheit and kept to 0.1 F):

- ``temp_1`` / ``temp_2``: the previous two days' maxima (the first two days of 2012 have none: dropped);
- ``average``: the mean maximum over the *training years* (2012-2014) of the days within
  ``window_days`` (7) calendar days of the date. Three years give only three values per calendar day,
  so a +-7-day window (45 values) stands in for a long-term normal, as smoothed climate normals do.
  Rows of a training year leave their own year out (their ``average`` comes from the two other years,
  so no row's own maximum is in its inputs); rows of 2015 use all three. 2015, the test year, never
  enters any ``average``.
- ``week``: the weekday name as the tutorial spells it (Mon, Tues, Wed, Thurs, Fri, Sat, Sun).

The tutorial's ``friend`` column (a friend's guesses) is noise the tutorial itself ignores; the embedded
table has none, and ``drop: [friend]`` leaves it out of a ``temps.csv`` that has it.

Which table and split (:class:`TemperatureDataModule`):

- ``path`` null: the embedded table, tested on ``embedded_test_query`` (2015, the year no ``average``
  was built from);
- ``path`` a file (the tutorial's ``temps.csv``, its extended version, your own): that file's columns
  as they are, split at random like the tutorial's ``train_test_split(test_size=0.25)``, unless
  ``test_query`` / ``test_path`` / ``split_column`` say otherwise. Every column but the target and
  ``drop`` is an input; ``categorical`` names the text columns (``week``; the extended file's
  ``weekday``), whose values are learned from the training rows unless ``categories`` lists them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lit_vision.data.tabular import TabularDataModule, read_csv
from lit_vision.errors import UserError
from lit_vision.utils.io import atomic_write_text

log = logging.getLogger(__name__)

COLUMNS = ("year", "month", "day", "week", "temp_2", "temp_1", "average", "actual")
WEEKDAYS = ("Mon", "Tues", "Wed", "Thurs", "Fri", "Sat", "Sun")
TRAIN_YEARS = (2012, 2013, 2014)
WINDOW_DAYS = 7
# The embedded table's test rows: `average` is built from 2012-2014 only.
EMBEDDED_TEST_QUERY = "year == 2015"
# A file's random test share: the tutorial's train_test_split(test_size=0.25).
TEST_FRACTION = 0.25
# Calendar positions on a leap-year calendar (Feb 29 included), so every (month, day) has one.
CALENDAR_DAYS = 366


def celsius_to_fahrenheit(celsius: np.ndarray | pd.Series) -> np.ndarray:
    """Degrees Celsius -> degrees Fahrenheit."""
    return np.asarray(celsius, dtype=float) * 9.0 / 5.0 + 32.0


def seattle_daily_maxima() -> pd.DataFrame:
    """``date`` and ``temp_max`` (Celsius) of vega_datasets' seattle-weather (ships with the package)."""
    from vega_datasets import data

    weather = data.seattle_weather()
    return weather[["date", "temp_max"]].sort_values("date").reset_index(drop=True)


def calendar_position(months: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Day of a leap year (0..365) of each (month, day), so Feb 29 sits between Feb 28 and Mar 1."""
    dates = pd.to_datetime(pd.DataFrame({"year": 2012, "month": months, "day": days}))
    return dates.dt.day_of_year.to_numpy() - 1


def historical_average(
    maxima: np.ndarray,
    years: np.ndarray,
    positions: np.ndarray,
    train_years: Sequence[int],
    window_days: int,
) -> np.ndarray:
    """For every row, the mean of ``maxima`` over the training years within ``window_days`` calendar days,
    leaving out the row's own year. The window widens (one day at a time) for a calendar day no other
    training year has, i.e. Feb 29 with ``window_days=0``."""
    years = np.asarray(years)
    gap = np.abs(positions[:, None] - positions[None, :])
    gap = np.minimum(gap, CALENDAR_DAYS - gap)  # the calendar wraps around at New Year
    candidates = np.isin(years, list(train_years))[None, :] & (years[None, :] != years[:, None])
    if not candidates.any(axis=1).all():
        raise ValueError("the average needs at least two training years")
    # per row, the narrowest window (at least window_days) that holds a candidate day
    nearest = np.where(candidates, gap, CALENDAR_DAYS).min(axis=1)
    window = np.maximum(window_days, nearest)
    chosen = candidates & (gap <= window[:, None])
    average = (chosen * np.asarray(maxima, dtype=float)[None, :]).sum(axis=1) / chosen.sum(axis=1)
    return average


def build_temps_frame(
    train_years: Sequence[int] = TRAIN_YEARS,
    window_days: int = WINDOW_DAYS,
    weather: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The temperature table in the tutorial's schema from daily maxima (see the module docstring).

    Args:
        train_years: the years ``average`` is computed from (test on the others to avoid leakage).
        window_days: half-width of the calendar window of ``average`` (0: that calendar day only).
        weather: ``date`` + ``temp_max`` (Celsius) rows; default: vega_datasets' seattle-weather.
    """
    if window_days < 0:
        raise ValueError(f"window_days must be >= 0, got {window_days}")
    weather = seattle_daily_maxima() if weather is None else weather
    dates = pd.to_datetime(weather["date"]).reset_index(drop=True)
    if (dates.diff().dropna() != pd.Timedelta(days=1)).any():
        raise ValueError("the weather rows must be consecutive days (temp_1/temp_2 are the days before)")
    actual = np.round(celsius_to_fahrenheit(weather["temp_max"].to_numpy()), 1)
    years, months, days = dates.dt.year.to_numpy(), dates.dt.month.to_numpy(), dates.dt.day.to_numpy()
    present = sorted(set(years.tolist()))
    if len(set(train_years) & set(present)) < 2:
        raise ValueError(f"train_years {list(train_years)} must include at least two of the years {present}")
    average = historical_average(actual, years, calendar_position(months, days), train_years, window_days)
    frame = pd.DataFrame(
        {
            "year": years,
            "month": months,
            "day": days,
            "week": [WEEKDAYS[d] for d in dates.dt.day_of_week],
            "temp_2": pd.Series(actual).shift(2),
            "temp_1": pd.Series(actual).shift(1),
            "average": np.round(average, 1),
            "actual": actual,
        }
    )
    return frame.iloc[2:].reset_index(drop=True)


def write_temps_csv(path: str | Path, **kwargs: Any) -> Path:
    """Build the table (:func:`build_temps_frame` arguments) and write it as CSV (atomically)."""
    frame = build_temps_frame(**kwargs)
    return atomic_write_text(path, frame.to_csv(index=False, float_format="%.1f"))


class TemperatureDataModule(TabularDataModule):
    """The tutorial's temperature regression: predict ``actual`` from the rest of the row.

    With ``path`` null the embedded table (module docstring) is written to
    ``<data_dir>/temps/seattle_temps_window<window_days>.csv`` on first use and read from there, and its
    test rows are ``embedded_test_query``'s; give ``path`` to use a file of your own (the tutorial's
    ``temps.csv``), split at random (``test_fraction``) unless ``test_query`` says otherwise. Every other
    argument is :class:`~lit_vision.data.tabular.TabularDataModule`'s.
    """

    def __init__(
        self,
        path: str | None = None,
        data_dir: str = "data",
        window_days: int = WINDOW_DAYS,
        target: str | Sequence[str] = "actual",
        categorical: Sequence[str] | None = ("week",),
        drop: Sequence[str] | None = ("friend",),
        date: str | Sequence[str] | None = ("year", "month", "day"),
        test_query: str | None = None,
        embedded_test_query: str = EMBEDDED_TEST_QUERY,
        test_fraction: float = TEST_FRACTION,
        default_data_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        if path in (None, "") and not test_query:
            test_query = embedded_test_query
        super().__init__(
            path=path,
            target=target,
            categorical=categorical,
            drop=drop,
            date=date,
            test_query=test_query,
            test_fraction=test_fraction,
            **kwargs,
        )
        self.data_dir = Path(str(data_dir)).expanduser()
        self.window_days = int(window_days)
        # Only the project's data folder may be created for the embedded table; a folder the user names
        # must exist (a typo must not quietly get a fresh copy of the sample).
        default = Path(str(default_data_dir)).expanduser() if default_data_dir is not None else self.data_dir
        self.may_create_data_dir = self.data_dir.absolute() == default.absolute()

    def embedded_path(self) -> Path:
        """Where the embedded table is written (when ``path`` is null)."""
        return self.data_dir / "temps" / f"seattle_temps_window{self.window_days}.csv"

    def prepare_data(self) -> None:
        if self.path is None and not self.embedded_path().is_file():
            target = self.embedded_path()
            if not self.may_create_data_dir and not self.data_dir.is_dir():
                raise UserError(
                    f"data.data_dir={self.data_dir} does not exist. Check the path: the embedded temperature "
                    "table is written into a folder you name only when it exists (leave data.data_dir out to "
                    "use the project's data folder), or set data.path to your own temps.csv."
                )
            try:
                write_temps_csv(target, window_days=self.window_days)
            except OSError as exc:
                raise UserError(
                    f"cannot write the embedded temperature table to {target} ({exc}): set data.data_dir "
                    "(or paths.data_dir) to a writable folder, or data.path to your own temps.csv."
                ) from None
            log.info("Wrote the embedded temperature table (seattle-weather 2012-2015) to %s", target)

    def source_name(self) -> str:
        return f"data.path={self.path}" if self.path is not None else str(self.embedded_path())

    def load_table(self) -> pd.DataFrame:
        if self.path is not None:
            return super().load_table()
        self.prepare_data()
        return read_csv(self.embedded_path(), "the embedded table")
