"""Where the data folders (targets/, pipelines/, gates/) are: inside the wheel, or the source tree."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    # A wheel carries the folders under edgeopt/_data; an editable install or a checkout reads the
    # repository root, so an edit to targets/ shows at once.
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"edgeopt data folder {name!r} is missing from this installation")
