"""What every environment edgeopt prepares beside its own shares: where they live, their status, and a create
that builds in a staging folder and renames it into place, so a failed create leaves nothing half-made."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from edgeopt.errors import EdgeoptError, ExitStatus, MissingDependency


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


class Environment(ABC):
    """One environment under the environments' root: what `edgeopt env create|list|remove NAME` acts on."""

    name: ClassVar[str]
    describes: ClassVar[str]  # what it is, for "missing: …" messages

    def __init__(self, root: Path):
        self.path = root / self.name

    def _recorded(self) -> dict | None:
        """What create wrote (env.json), or None before it ran."""
        info_file = self.path / "env.json"
        return json.loads(info_file.read_text()) if info_file.is_file() else None

    def _not_created(self) -> EnvStatus:
        return EnvStatus(self.name, self.path, False, f"not created (run `{create_command(self.name)}`)", {})

    @abstractmethod
    def status(self) -> EnvStatus: ...

    @abstractmethod
    def create(self, say: Callable[[str], None] = print, force: bool = False) -> EnvStatus: ...

    def require(self) -> EnvStatus:
        status = self.status()
        if not status.present:
            raise MissingDependency(f"{self.describes} ({status.detail})", create_command(self.name))
        return status

    def remove(self) -> bool:
        return remove_folder(self.path)

    # -- the worker's interpreter -----------------------------------------------------------------------
    def _edgeopt_code(self) -> Path:
        """py/, holding an `edgeopt` link to this edgeopt's package: what the environment's worker imports (always
        this edgeopt, whichever is installed, so the two never drift apart)."""
        code = self.path / "py"
        code.mkdir(exist_ok=True)
        package = Path(__file__).resolve().parent.parent  # edgeopt/, not edgeopt/envs/
        link = code / "edgeopt"
        if not link.is_symlink() or link.resolve() != package:
            link.unlink(missing_ok=True)
            link.symlink_to(package)
        return code

    def _wrapper(self, name: str, script: str) -> str:
        """bin/NAME, an executable script written by edgeopt (rewritten only when it changes)."""
        wrapper = self.path / "bin" / name
        wrapper.parent.mkdir(exist_ok=True)
        if not wrapper.exists() or wrapper.read_text() != script:
            wrapper.write_text(script)
            wrapper.chmod(0o755)
        return str(wrapper)


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
