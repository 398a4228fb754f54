"""Small helpers the adapters share."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
from pathlib import Path

from edgeopt.artifact import LineageEntry, ModelArtifact
from edgeopt.passes import PassConfig, PassContext
from edgeopt.registry import Availability


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


def lineage_entry(context: PassContext, pass_name: str, config: PassConfig, notes: dict | None = None) -> LineageEntry:
    return LineageEntry(step=context.extra["step"], pass_name=pass_name, config=config.model_dump(mode="json"),
                        notes=notes or {})


def with_runtime_settings(artifact: ModelArtifact, config: PassConfig, context: PassContext,
                          pass_name: str) -> ModelArtifact:
    """Runtime-only passes (threads, hints, arenas): the same files, new settings for the runtime."""
    settings = {k: v for k, v in config.model_dump().items() if v is not None}
    return artifact.model_copy(update={"runtime_config": settings,
                                       "lineage": (*artifact.lineage, lineage_entry(context, pass_name, config))})


def files_beside(artifact: ModelArtifact) -> dict[str, Path]:
    """Package layout of a model file and the files next to it it needs, by name relative to it."""
    main = Path(artifact.path)
    return {str(p.relative_to(main.parent)): p for p in artifact.all_paths()}
