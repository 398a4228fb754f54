"""One error hierarchy; each kind of failure maps to the exit status a user or CI script acts on."""

from __future__ import annotations

import difflib
import enum
import re
import reprlib
from collections.abc import Iterable
from dataclasses import dataclass


class ExitStatus(enum.IntEnum):
    OK = 0  # a candidate passed every gate (or the command did what was asked)
    GATES_FAILED = 1  # the build ran, but no candidate passed every gate
    USAGE = 2  # bad manifest, bad flag, unknown target
    INTERNAL = 3  # a bug or an unexpected failure in edgeopt itself
    ENVIRONMENT = 4  # this machine lacks what the build needs: a framework, the aarch64 environment, disk space
    VERIFY_FAILED = 5  # a package archive is corrupt, unsafe, or its model does not run


class EdgeoptError(Exception):
    exit_status = ExitStatus.INTERNAL


class UsageError(EdgeoptError):
    exit_status = ExitStatus.USAGE


# Messages quote what the user wrote, but never all of it: a value can be a megabyte of text.
MAX_QUOTE = 200  # characters of one quoted value
MAX_KEY = 120  # characters of a key path
MAX_PROBLEM = 400  # characters of one problem line
MAX_CHOICES = 8  # suggestions shown
MAX_PROBLEMS_SHOWN = 12  # problems listed one per line; the rest are counted


def shorten(text: str, limit: int = MAX_QUOTE) -> str:
    """`text`, cut to `limit` characters with the number of characters left out."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def printable(text: str) -> str:
    """Control characters escaped (`\\n`, `\\x1b`): a key in a manifest must not move the cursor or recolor
    the terminal it is reported on."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = MAX_QUOTE
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 8
_REPR.maxlevel = 3


def quote(value) -> str:
    """repr() of a value the user wrote, bounded in time and length whatever its size or nesting."""
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails is still named
        text = f"<{type(value).__name__}>"
    return shorten(text)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file: where (a dotted key), what, and what would be valid."""

    key: str
    problem: str
    choices: tuple[str, ...] = ()

    def render(self) -> str:
        key, problem = printable(shorten(self.key, MAX_KEY)), printable(shorten(self.problem, MAX_PROBLEM))
        text = f"{key}: {problem}" if key else problem
        if self.choices and "did you mean" not in self.problem:
            shown = ", ".join(printable(shorten(c, 60)) for c in self.choices[:MAX_CHOICES])
            text += f" (did you mean: {shown}?)"
        return text


class ManifestError(UsageError):
    """A manifest that does not validate: says where, what was expected and what would be valid.

    It carries one problem or several (`problems`); `key`, `problem` and `choices` are the first one's.
    Several are rendered one per line under the file's name."""

    def __init__(self, file: str, key: str = "", problem: str = "", choices: Iterable[str] = (), *,
                 problems: Iterable[Problem] = (), summary: str = "", count: int | None = None):
        listed = list(problems) or [Problem(key, problem, tuple(choices))]
        first = listed[0]
        self.file, self.key, self.problem, self.choices = file, first.key, first.problem, list(first.choices)
        self.problems = listed
        count = max(count or 0, len(listed))  # `count`: how many there were, when only some are listed
        file = printable(shorten(file, 300))
        if count == 1 and not summary:
            message = f"{file}: {first.render()}"
        else:
            lines = [f"  {p.render()}" for p in listed[:MAX_PROBLEMS_SHOWN]]
            if count > len(lines):
                lines.append(f"  … and {count - len(lines):,} more")
            message = "\n".join([f"{file}: {summary or f'{count:,} problems'}:", *lines])
        super().__init__(message)


class UnknownTarget(UsageError):
    def __init__(self, name: str, known: Iterable[str]):
        known = sorted(set(known))
        close = closest(name, known)
        hint = f"; closest: {', '.join(close)}" if close else ""
        super().__init__(f"unknown target {quote(name)}{hint} (see `edgeopt targets` for the list)")
        self.name, self.closest = name, close


class MissingDependency(EdgeoptError):
    exit_status = ExitStatus.ENVIRONMENT

    def __init__(self, what: str, install: str):
        super().__init__(f"{what} is not installed: {install}")
        self.what, self.install = what, install


class PlanError(UsageError):
    """The manifest and target admit no runnable pipeline."""


class BaselineFailed(UsageError):
    """The source model, as given, could not be measured: the build stops instead of running every candidate
    into the same error."""


class PassFailed(EdgeoptError):
    """A pass or a measurement failed for one candidate; recorded, never fatal to the build."""


class PackageError(EdgeoptError):
    """A package archive that must not be trusted: a changed file, a path escaping it, a model that fails."""

    exit_status = ExitStatus.VERIFY_FAILED


class ModelRejected(UsageError):
    """A model file edgeopt refuses to hand to a framework: truncated, corrupt, pointing outside its folder,
    or declaring sizes no real model has."""


class CacheDiskFull(EdgeoptError):
    """The disk holding the build cache filled up while an entry was written; nothing was kept. Not a bug in
    edgeopt: the machine lacks room, like a missing framework."""

    exit_status = ExitStatus.ENVIRONMENT

    def __init__(self, cache_dir: str, detail: str = ""):
        super().__init__(
            f"the disk holding the build cache {cache_dir} is full{f' ({detail})' if detail else ''}; the entry "
            "being written was discarded. Free space, cap the cache (`edgeopt cache prune --max-size 5G`, "
            "EDGEOPT_CACHE_MAX_GB), point EDGEOPT_CACHE_DIR at another disk, or build with --no-cache")
        self.cache_dir = cache_dir


# -- closest matches ------------------------------------------------------------------------------------------
_FAMILY = re.compile(r"^([a-z]+)(\d+)(.*)$")  # rk3588s → ('rk', '3588', 's'): a letter prefix and a model number
CUTOFF = 0.5  # below this a choice is not similar enough to suggest
MARGIN = 0.12  # suggestions are within this of the best one, so a good match does not drag weak ones along


def closest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The choices most similar to `word`, best first; none when nothing is similar (never an arbitrary list).

    Similarity is the best of: difflib's ratio against the whole choice or one of its dash-separated parts;
    a prefix (`jetson` → `jetson-orin-nano-8gb`); and a product family, the same letters followed by a model
    number (`rk9999` → `rk3566`, `rk3588`; `pi6` → `pi4`, `pi5`), closer when the numbers share leading digits.
    """
    word = str(word).strip().lower()[:100]
    unique = list(dict.fromkeys(str(c) for c in choices))
    if not word or not unique:
        return []
    scored = sorted(((_similarity(word, c.lower()), c) for c in unique), key=lambda sc: (-sc[0], len(sc[1]), sc[1]))
    best = scored[0][0]
    if best < CUTOFF:
        return []
    return [c for score, c in scored if score >= max(CUTOFF, best - MARGIN)][:n]


def _similarity(word: str, choice: str) -> float:
    if word == choice:
        return 1.0
    parts = {choice, *filter(None, re.split(r"[-_.\s]+", choice))}
    score = max(difflib.SequenceMatcher(None, word, part).ratio() for part in parts)
    if len(word) >= 3 and choice.startswith(word) or len(choice) >= 3 and word.startswith(choice):
        score = max(score, 0.75)
    mine = _FAMILY.match(word)
    if mine:
        for part in parts:
            theirs = _FAMILY.match(part)
            if theirs and theirs.group(1) == mine.group(1):
                digits, other = mine.group(2), theirs.group(2)
                shared = len(_common_prefix(digits, other)) / max(len(digits), len(other))
                score = max(score, 0.6 + 0.1 * (len(digits) == len(other)) + 0.2 * shared)
    return score


def _common_prefix(a: str, b: str) -> str:
    size = 0
    for x, y in zip(a, b):
        if x != y:
            break
        size += 1
    return a[:size]
