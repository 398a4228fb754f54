"""Small helpers the adapters share."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
from pathlib import Path

from edgeopt.frameworks.base import Availability


def probe_distribution(*distributions: str, import_name: str) -> Availability:
    """Installed and importable? Never raises: a broken install is reported, not thrown."""
    try:
        versions = [f"{d} {importlib.metadata.version(d)}" for d in distributions]
    except importlib.metadata.PackageNotFoundError as exc:
        return Availability(False, None, f"{exc.name} is not installed")
    try:
        # find_spec, not import: probing must stay cheap and must not start a framework's telemetry.
        found = importlib.util.find_spec(import_name) is not None
    except (ImportError, ValueError) as exc:
        return Availability(False, None, f"{import_name} cannot be located: {exc}")
    if not found:
        return Availability(False, None, f"{import_name} is not importable")
    return Availability(True, ", ".join(versions))


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def timed_shapes(timing_data: Path | None, dynamic: list[str], pass_name: str) -> dict[str, list[int]]:
    """The shape each named input has in the batch the build times: what a fix-shapes pass fixes a dynamic input
    to (NothingToDo when no input is dynamic). A padded token input takes the longest sequence the data holds (the model then serves every sample,
    padded to it) instead of the timed sample's own length."""
    import numpy as np

    from edgeopt.datafiles import load_samples
    from edgeopt.passes import NothingToDo

    if not dynamic:
        raise NothingToDo("every input's shape is already fixed")
    if timing_data is None:
        raise ValueError(f"{pass_name} needs the timed batch")
    timed = load_samples(timing_data)
    feeds = timed.feed(0, timed.count)
    fixed = {name: [int(n) for n in np.shape(feeds[name])] for name in dynamic}
    for name in fixed:
        if timed.padded(name):
            fixed[name][1] = int(timed.arrays[name].shape[1])
    return fixed
