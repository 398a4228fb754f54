"""Content-addressed build cache: pass outputs and measurements, keyed by what produced them.

A key hashes the input model's bytes, the pass and its config, the framework versions and the target,
so an unchanged manifest rebuilds from the cache and any change misses it. Every entry is written
into a staging folder and renamed into place as a whole: a build killed mid-write leaves a stray
staging folder, never an entry a later build would take for finished. That is also what makes an
interrupted build resume: whatever finished before the kill is found again.

Reading an entry touches a `used` file inside it; `prune` evicts the least recently used entries until
the cache fits a size (EDGEOPT_CACHE_MAX_GB caps it after every write). An entry is evicted by renaming it
away first, so a build reading it at that moment sees a miss, never half an entry.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgeopt.artifact import ModelArtifact
from edgeopt.errors import CacheDiskFull, UsageError
from edgeopt.hashing import files_digest, path_digest, value_digest

CACHE_FORMAT = 1
KINDS = ("passes", "measurements")
COSTS = "costs"  # seconds each step's pass took on a model, by the model's digest: what cheap-first orders by
USED = "used"  # touched inside an entry each time a build reads it: the entry's last use
MAX_GB_ENV = "EDGEOPT_CACHE_MAX_GB"
STALE_STAGING_S = 24 * 3600  # a staging folder this old was left by a killed build
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def default_cache_dir(environ) -> Path:
    if environ.get("EDGEOPT_CACHE_DIR"):
        return Path(environ["EDGEOPT_CACHE_DIR"])
    base = environ.get("XDG_CACHE_HOME") or (Path(environ["HOME"]) / ".cache" if environ.get("HOME") else Path.home() / ".cache")
    return Path(base) / "edgeopt"


def artifact_digest(artifact: ModelArtifact) -> str:
    main = Path(artifact.path)
    if main.is_dir():
        return path_digest(main)
    return files_digest(artifact.all_paths())


def make_key(kind: str, **parts) -> str:
    return value_digest({"cache_format": CACHE_FORMAT, "kind": kind, **parts})


@dataclass
class BuildCache:
    root: Path | None  # None: caching off
    read_passes: bool = True
    read_measurements: bool = True
    max_bytes: int | None = None  # after each write, least recently used entries are evicted down to this
    hits: dict[str, int] = field(default_factory=lambda: {"pass": 0, "measure": 0})
    misses: dict[str, int] = field(default_factory=lambda: {"pass": 0, "measure": 0})

    @property
    def enabled(self) -> bool:
        return self.root is not None

    # -- passes -------------------------------------------------------------------------------------
    def get_pass(self, key: str, into: Path) -> tuple[ModelArtifact, float] | str | None:
        """The cached output, copied (hard-linked where possible) into `into`; a string when the pass had
        nothing to do (why); None on a miss."""
        entry = self._entry("passes", key)
        if entry is None or not self.read_passes:
            self.misses["pass"] += self.enabled
            return None
        try:
            meta = json.loads((entry / "entry.json").read_text())
            if "nothing_to_do" not in meta:
                if into.exists():
                    shutil.rmtree(into)
                shutil.copytree(entry / "files", into, copy_function=_link_or_copy)
        except (FileNotFoundError, shutil.Error):  # evicted while being read: a miss
            shutil.rmtree(into, ignore_errors=True)
            self.misses["pass"] += 1
            return None
        _touch_used(entry)
        self.hits["pass"] += 1
        if "nothing_to_do" in meta:
            return meta["nothing_to_do"]
        artifact = ModelArtifact(**meta["artifact"])
        return artifact.rebased(into), meta["seconds"]

    def put_pass(self, key: str, artifact: ModelArtifact, seconds: float) -> None:
        if not self.enabled:
            return
        main = Path(artifact.path)

        def fill(staging: Path) -> None:
            files = staging / "files"
            files.mkdir()
            # copies, not links: a file edited in place later must not change what the cache holds
            if main.is_dir():
                shutil.copytree(main, files / main.name)
            else:
                for path in artifact.all_paths():
                    target = files / path.relative_to(main.parent)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
            (staging / "entry.json").write_text(json.dumps({"artifact": artifact.model_dump(mode="json"),
                                                            "seconds": seconds}))

        self._commit("passes", key, fill)

    def put_pass_nothing_to_do(self, key: str, why: str) -> None:
        """A pass that did not apply to this model will not apply next time either (failures are not
        kept: they can be transient)."""
        if self.enabled:
            self._commit("passes", key, lambda staging: (staging / "entry.json").write_text(
                json.dumps({"nothing_to_do": why})))

    # -- pass costs: a hint for ordering the search, never a result ----------------------------------------
    def pass_costs(self, model: str) -> dict[str, float]:
        """Seconds each step's pass took on this model in earlier builds ({} when none ran, or caching is off)."""
        if not self.enabled:
            return {}
        try:
            found = json.loads((self.root / COSTS / f"{model}.json").read_text())
        except (OSError, ValueError):
            return {}
        return {str(step): float(s) for step, s in found.items() if isinstance(s, (int, float))} \
            if isinstance(found, dict) else {}

    def record_pass_costs(self, model: str, seconds: Mapping[str, float]) -> None:
        """Merged into what earlier builds recorded and renamed into place whole; two builds at once may lose
        one's figures (they only order a later search), and a cache that cannot be written keeps none."""
        if not self.enabled or not seconds:
            return
        folder = self.root / COSTS
        merged = {**self.pass_costs(model), **{step: round(s, 3) for step, s in seconds.items()}}
        staging = folder / f".staging-{model}-{uuid.uuid4().hex[:8]}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            staging.write_text(json.dumps(merged, sort_keys=True))
            os.replace(staging, folder / f"{model}.json")
        except OSError:
            staging.unlink(missing_ok=True)

    # -- measurements ---------------------------------------------------------------------------------
    def get_measurement(self, key: str, files_to: dict[str, Path] | None = None) -> dict | None:
        entry = self._entry("measurements", key)
        if entry is None or not self.read_measurements:
            self.misses["measure"] += self.enabled
            return None
        try:
            for name, destination in (files_to or {}).items():
                if not (entry / name).exists():
                    self.misses["measure"] += 1
                    return None
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(entry / name, destination)
            result = json.loads((entry / "entry.json").read_text())
        except FileNotFoundError:  # evicted while being read: a miss
            self.misses["measure"] += 1
            return None
        _touch_used(entry)
        self.hits["measure"] += 1
        return result

    def put_measurement(self, key: str, result: dict, files: dict[str, Path] | None = None) -> None:
        if not self.enabled:
            return

        def fill(staging: Path) -> None:
            for name, source in (files or {}).items():
                shutil.copy2(source, staging / name)
            (staging / "entry.json").write_text(json.dumps(result))

        self._commit("measurements", key, fill)

    # -- storage --------------------------------------------------------------------------------------
    def _entry(self, kind: str, key: str) -> Path | None:
        if not self.enabled:
            return None
        folder = self.root / kind / key[:2] / key
        return folder if (folder / "entry.json").is_file() else None

    def _commit(self, kind: str, key: str, fill) -> None:
        final = self.root / kind / key[:2] / key
        staging = final.parent / f".staging-{key}-{uuid.uuid4().hex[:8]}"
        try:
            staging.mkdir(parents=True)
            fill(staging)
            if final.exists():  # written by a concurrent build meanwhile; the same key means the same content
                shutil.rmtree(staging)
                return
            try:
                os.replace(staging, final)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not final.exists():
                    raise
                shutil.rmtree(staging, ignore_errors=True)  # a concurrent build renamed its copy in first
                return
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if _disk_full(exc):
                raise CacheDiskFull(str(self.root), os.strerror(errno.ENOSPC)) from exc
            raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if self.max_bytes is not None:
            prune(self.root, self.max_bytes, keep={final})

    def summary(self) -> dict:
        return {"enabled": self.enabled, "dir": str(self.root) if self.root else None,
                "hits": dict(self.hits), "misses": dict(self.misses)}


def _link_or_copy(source, destination) -> None:
    # cache entries are never modified in place, and passes write into fresh folders: links are safe
    try:
        os.link(source, destination)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, destination)


def _disk_full(exc: OSError) -> bool:
    if exc.errno in _DISK_FULL:
        return True
    # shutil.copytree gathers the errors of the files it copies into one shutil.Error of messages
    return isinstance(exc, shutil.Error) and any(os.strerror(code) in str(exc) for code in _DISK_FULL)


def _touch_used(entry: Path) -> None:
    try:
        (entry / USED).touch()
    except OSError:  # a read-only cache, or the entry evicted meanwhile: the use is not recorded
        pass


# -- administration: `edgeopt cache info | prune --max-size SIZE | clear` ----------------------------------------
@dataclass(frozen=True)
class _Entry:
    kind: str
    path: Path
    bytes: int
    last_used: float


def _entries(root: Path) -> list[_Entry]:
    found = []
    for kind in KINDS:
        for shard in _listdir(root / kind):
            if shard.name.startswith("."):
                continue
            for entry in _listdir(shard):
                if entry.name.startswith(".") or not entry.is_dir():
                    continue
                try:
                    written = (entry / "entry.json").stat().st_mtime
                except OSError:  # not an entry (or evicted meanwhile)
                    continue
                try:
                    used = (entry / USED).stat().st_mtime
                except OSError:
                    used = written
                found.append(_Entry(kind, entry, _size(entry), max(used, written)))
    return found


def _listdir(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _size(folder: Path) -> int:
    total = 0
    for parent, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                pass
    return total


def _leftovers(root: Path) -> list[Path]:
    """Staging folders left by killed builds, and entries a killed prune had renamed away."""
    now, found = time.time(), []
    for kind in KINDS:
        for shard in _listdir(root / kind):
            for item in _listdir(shard):
                if item.name.startswith(".trash-"):
                    found.append(item)
                elif item.name.startswith(".staging-"):
                    try:
                        if now - item.stat().st_mtime > STALE_STAGING_S:
                            found.append(item)
                    except OSError:
                        pass
    return found


def cache_info(root: Path) -> dict:
    """How many entries the cache holds and how many bytes, in all and per kind (passes, measurements)."""
    root = Path(root)
    entries = _entries(root)
    by_kind = {kind: {"entries": 0, "bytes": 0} for kind in KINDS}
    for entry in entries:
        by_kind[entry.kind]["entries"] += 1
        by_kind[entry.kind]["bytes"] += entry.bytes
    used = [e.last_used for e in entries]
    return {"dir": str(root), "entries": len(entries), "bytes": sum(e.bytes for e in entries), "by_kind": by_kind,
            "oldest_use": min(used) if used else None, "newest_use": max(used) if used else None,
            "leftovers": len(_leftovers(root))}


def prune(root: Path, max_bytes: int, keep: set[Path] | frozenset = frozenset()) -> dict:
    """Evict least recently used entries until the cache holds at most `max_bytes` (entries in `keep`
    stay); also removes what killed builds left. Returns what was removed and what is left."""
    if max_bytes < 0:
        raise UsageError(f"a cache size cannot be negative (got {max_bytes})")
    root = Path(root)
    for leftover in _leftovers(root):
        shutil.rmtree(leftover, ignore_errors=True)
    entries = sorted(_entries(root), key=lambda e: e.last_used)
    total = sum(e.bytes for e in entries)
    removed = freed = 0
    for entry in entries:
        if total <= max_bytes:
            break
        if entry.path in keep:
            continue
        if _evict(entry.path):
            removed, freed, total = removed + 1, freed + entry.bytes, total - entry.bytes
    return {"dir": str(root), "removed": removed, "freed_bytes": freed, "entries": len(entries) - removed,
            "bytes": total}


def clear(root: Path) -> dict:
    """Remove every entry (and every leftover); the cache folder itself stays."""
    result = prune(root, 0)
    for kind in (*KINDS, COSTS):  # the shards, now empty, and anything else edgeopt put there
        shutil.rmtree(Path(root) / kind, ignore_errors=True)
    return result


def _evict(entry: Path) -> bool:
    """Rename the entry away (atomic: a reader sees it whole or not at all), then delete it."""
    trash = entry.parent / f".trash-{entry.name}-{uuid.uuid4().hex[:8]}"
    try:
        os.replace(entry, trash)
    except OSError:  # evicted by a concurrent prune
        return False
    shutil.rmtree(trash, ignore_errors=True)
    return True


_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str) -> int:
    """'5G', '500MB', '1.5GiB', '0', '1048576' → bytes (K/M/G/T are powers of 1000; KiB/MiB/GiB of 1024)."""
    match = _SIZE.match(str(text))
    if not match:
        raise UsageError(f"not a size: {str(text)[:40]!r} (examples: 500M, 5G, 1.5GiB)")
    number, unit, suffix = float(match.group(1)), match.group(2).lower(), match.group(3).lower()
    scale = 1024 ** "_kmgt".index(unit) if unit and suffix.startswith("i") else _UNITS[unit]
    return int(number * scale)


def cache_max_bytes(environ: Mapping[str, str]) -> int | None:
    """EDGEOPT_CACHE_MAX_GB (gigabytes, 10**9 bytes; decimals allowed) as bytes; None when unset or empty."""
    value = str(environ.get(MAX_GB_ENV, "")).strip()
    if not value:
        return None
    try:
        gigabytes = float(value)
    except ValueError:
        raise UsageError(f"{MAX_GB_ENV} must be a number of gigabytes, such as 5 or 0.5 (got {value[:40]!r})") from None
    if not gigabytes >= 0 or gigabytes == float("inf"):
        raise UsageError(f"{MAX_GB_ENV} must be a number of gigabytes of 0 or more (got {value[:40]!r})")
    return int(gigabytes * 10**9)


def format_size(size: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
