"""Content hashes of files, folders and JSON values: the keys of the build cache."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

_CHUNK = 1 << 20
# (path, size, mtime_ns) → digest: one build hashes a source model once, not once per step
_memo: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _memo:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        _memo[key] = digest.hexdigest()
    return _memo[key]


def files_digest(paths: list[Path], root: Path | None = None) -> str:
    """One digest over several files, names included (relative to root, or bare names)."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: str(p)):
        name = str(path.relative_to(root)) if root else path.name
        digest.update(f"{name}\0{file_digest(path)}\n".encode())
    return digest.hexdigest()


def path_digest(path: Path) -> str:
    path = Path(path)
    if path.is_dir():
        return files_digest([p for p in path.rglob("*") if p.is_file()], root=path)
    return file_digest(path)


def value_digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
