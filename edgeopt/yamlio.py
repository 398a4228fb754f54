"""YAML loading that turns parse errors into messages with the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from edgeopt.errors import ManifestError


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(str(path), "", "file not found") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise ManifestError(str(path), where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None


def load_yaml_documents(path: Path) -> list[Any]:
    try:
        return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    except yaml.YAMLError as exc:
        raise ManifestError(str(path), "", f"not valid YAML: {exc}") from None
