"""What every environment edgeopt prepares beside its own shares: where they live, their status, and a create
that builds in a staging folder and renames it into place, so a failed create leaves nothing half-made."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edgeopt.errors import EdgeoptError, ExitStatus


class EnvCreateFailed(EdgeoptError):
    """An environment could not be created (a download or a build step failed)."""

    exit_status = ExitStatus.ENVIRONMENT


@dataclass(frozen=True)
class EnvStatus:
    name: str
    path: Path
    present: bool
    detail: str
    packages: dict
    key: str | None = None  # what is inside (requirements, versions): part of the cache key of what runs there


def env_root(environ: Mapping[str, str]) -> Path:
    if environ.get("EDGEOPT_ENV_DIR"):
        return Path(environ["EDGEOPT_ENV_DIR"])
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return home / ".cache" / "edgeopt" / "envs"


def create_command(name: str) -> str:
    return f"edgeopt env create {name}"


@contextmanager
def staged(path: Path) -> Iterator[Path]:
    """A fresh folder beside `path` to build into; it replaces `path` only if the body finishes."""
    staging = path.parent / f".staging-{path.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        yield staging
        if path.exists():
            shutil.rmtree(path)
        staging.replace(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_folder(path: Path) -> bool:
    if not path.exists():
        return False
    shutil.rmtree(path)
    return True


def run_step(command: list[str], **options) -> subprocess.CompletedProcess:
    completed = subprocess.run(command, capture_output=True, text=True, **options)
    if completed.returncode != 0:
        tail = (completed.stderr.strip() or completed.stdout.strip()).splitlines()[-5:]
        raise EnvCreateFailed(f"`{' '.join(command[:3])} …` failed: " + " | ".join(tail))
    return completed
