"""One error hierarchy; each kind of failure maps to the exit status a user or CI script acts on."""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable


class ExitStatus(enum.IntEnum):
    OK = 0  # a candidate passed every gate (or the command did what was asked)
    GATES_FAILED = 1  # the build ran, but no candidate passed every gate
    USAGE = 2  # bad manifest, bad flag, unknown target
    INTERNAL = 3  # a bug or an unexpected failure in edgeopt itself
    ENVIRONMENT = 4  # a framework the plan needs is not installed
    VERIFY_FAILED = 5  # a package archive is corrupt, unsafe, or its model does not run


class EdgeoptError(Exception):
    exit_status = ExitStatus.INTERNAL


class UsageError(EdgeoptError):
    exit_status = ExitStatus.USAGE


class ManifestError(UsageError):
    """A manifest that does not validate: says where, what was expected and what would be valid."""

    def __init__(self, file: str, key: str, problem: str, choices: Iterable[str] = ()):
        self.file, self.key, self.problem = file, key, problem
        self.choices = list(choices)
        message = f"{file}: {key}: {problem}" if key else f"{file}: {problem}"
        if self.choices:
            message += f" (did you mean: {', '.join(self.choices)}?)"
        super().__init__(message)


class UnknownTarget(UsageError):
    def __init__(self, name: str, known: Iterable[str]):
        known = sorted(set(known))
        close = closest(name, known) or known[:8]
        super().__init__(f"unknown target {name!r}; closest: {', '.join(close)} (see `edgeopt targets`)")
        self.name, self.closest = name, close


class MissingDependency(EdgeoptError):
    exit_status = ExitStatus.ENVIRONMENT

    def __init__(self, what: str, install: str):
        super().__init__(f"{what} is not installed: {install}")
        self.what, self.install = what, install


class PlanError(UsageError):
    """The manifest and target admit no runnable pipeline."""


class PassFailed(EdgeoptError):
    """A pass or a measurement failed for one candidate; recorded, never fatal to the build."""


class PackageError(EdgeoptError):
    """A package archive that must not be trusted: a changed file, a path escaping it, a model that fails."""

    exit_status = ExitStatus.VERIFY_FAILED


def closest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)
