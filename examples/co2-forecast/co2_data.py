"""Weekly atmospheric CO2 at Mauna Loa (ppm, March 1958 – December 2001; public domain: Keeling and Whorf,
Scripps / CDIAC), which the statsmodels package ships as a CSV. The file is read directly: statsmodels itself
is never imported. Weeks without a reading are filled by linear interpolation between their neighbours.

A sample is the past 104 weeks (two seasonal cycles); its label the 8 weeks that follow, in ppm. Training
windows end before 1995; evaluation windows forecast 1995 onwards, weeks the model never saw.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import numpy as np

CONTEXT, HORIZON = 104, 8
SPLIT = dt.date(1995, 1, 1)


def csv_path() -> Path:
    spec = importlib.util.find_spec("statsmodels")
    if spec is None:
        raise FileNotFoundError("statsmodels is not installed (it carries the data): pip install 'edgeopt[examples]'")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "co2" / "co2.csv"


def series() -> tuple[list[dt.date], np.ndarray]:
    """(week dates, ppm) with gaps interpolated."""
    dates, values = [], []
    for line in csv_path().read_text().splitlines()[1:]:
        day, _, ppm = line.partition(",")
        dates.append(dt.datetime.strptime(day, "%Y%m%d").date())
        values.append(float(ppm) if ppm.strip() else np.nan)
    values = np.asarray(values)
    known = ~np.isnan(values)
    filled = np.interp(np.arange(len(values)), np.flatnonzero(known), values[known])
    return dates, filled.astype(np.float32)


def windows(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(past [N, 104], future [N, 8]) for 'train' (forecasts ending before 1995) or 'test' (starting after)."""
    dates, values = series()
    starts = range(len(values) - CONTEXT - HORIZON + 1)
    if split == "train":
        chosen = [s for s in starts if dates[s + CONTEXT + HORIZON - 1] < SPLIT]
    elif split == "test":
        chosen = [s for s in starts if dates[s + CONTEXT] >= SPLIT]
    else:
        raise ValueError(f"split is 'train' or 'test', not {split!r}")
    past = np.stack([values[s:s + CONTEXT] for s in chosen])
    future = np.stack([values[s + CONTEXT:s + CONTEXT + HORIZON] for s in chosen])
    return past, future


def load(split: str = "test", stride: int = 1) -> dict:
    """The manifest's data hook: {'inputs': {'past': [N, 104]}, 'labels': [N, 8]} (ppm), every `stride`-th window."""
    past, future = windows(split)
    return {"inputs": {"past": past[::stride]}, "labels": future[::stride]}
