"""Content-addressed build cache: pass outputs and measurements, keyed by what produced them.

A key hashes the input model's bytes, the pass and its config, the framework versions and the target,
so an unchanged manifest rebuilds from the cache and any change misses it. Every entry is written
into a staging folder and renamed into place as a whole: a build killed mid-write leaves a stray
staging folder, never an entry a later build would take for finished. That is also what makes an
interrupted build resume: whatever finished before the kill is found again.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from edgeopt.artifact import ModelArtifact
from edgeopt.hashing import files_digest, path_digest, value_digest

CACHE_FORMAT = 1


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
        meta = json.loads((entry / "entry.json").read_text())
        if "nothing_to_do" in meta:
            self.hits["pass"] += 1
            return meta["nothing_to_do"]
        if into.exists():
            shutil.rmtree(into)
        shutil.copytree(entry / "files", into, copy_function=_link_or_copy)
        self.hits["pass"] += 1
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

    # -- measurements ---------------------------------------------------------------------------------
    def get_measurement(self, key: str, files_to: dict[str, Path] | None = None) -> dict | None:
        entry = self._entry("measurements", key)
        if entry is None or not self.read_measurements:
            self.misses["measure"] += self.enabled
            return None
        for name, destination in (files_to or {}).items():
            if not (entry / name).exists():
                self.misses["measure"] += 1
                return None
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(entry / name, destination)
        self.hits["measure"] += 1
        return json.loads((entry / "entry.json").read_text())

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
        staging.mkdir(parents=True)
        try:
            fill(staging)
            if final.exists():  # written by a concurrent build meanwhile; the same key means the same content
                shutil.rmtree(staging)
                return
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def summary(self) -> dict:
        return {"enabled": self.enabled, "dir": str(self.root) if self.root else None,
                "hits": dict(self.hits), "misses": dict(self.misses)}


def _link_or_copy(source, destination) -> None:
    # cache entries are never modified in place, and passes write into fresh folders: links are safe
    try:
        os.link(source, destination)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, destination)
