"""The adapter contract: what a framework adapter owes the core, written down as abstract classes.

An adapter (`FrameworkAdapter`) is a pass provider: its name, the command that installs it, its passes
and a probe that says whether it can run here without importing it. It may also bring a runtime that
the measurement worker drives, of one of two kinds:

- `GraphRuntime`: loads a model into a `GraphSession` (inputs, outputs, run on feeds), describes its
  I/O for packages, and, when `supports_layer_outputs`, returns every intermediate output for the
  per-layer diagnosis;
- `LlmRuntime`: scores a text (perplexity from its own logits) and opens a `Generator` that times
  generation token by token.

The worker dispatches on the declared kind (`isinstance`), never on which methods happen to exist.
Packaging has defaults by convention (the model file and the files beside it; the example script
`frameworks/examples/<name>_example.py`). Every adapter imports its framework inside functions, through
`require`, so the core and the CLI import with no framework installed.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from edgeopt.artifact import ModelArtifact
from edgeopt.datafiles import Samples
from edgeopt.errors import MissingDependency
from edgeopt.passes import Pass, PassConfig, PassContext
from edgeopt.protocol import LlmJob


@dataclass(frozen=True)
class Availability:
    """What a probe found: installed and importable, at which version, or why not."""

    available: bool
    version: str | None = None
    detail: str = ""


def require(module: str, what: str, install: str):
    """Import a framework module, or say in one line how to install it (the one import guard)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        detail = f" ({exc})" if getattr(exc, "name", module) not in (module, module.split(".")[0]) else ""
        raise MissingDependency(what + detail, install) from None


# -- sessions the runtimes hand to the worker -------------------------------------------------------------
@dataclass(frozen=True)
class InputInfo:
    name: str
    shape: tuple
    dtype: np.dtype | None  # None: whatever the data holds


class GraphSession(ABC):
    """A loaded model: run feeds, in the runtime's own process."""

    inputs: list[InputInfo]
    output_names: list[str]
    threads: int | None = None
    execution_precision: str | None = None  # what the runtime says it computes in, when it says

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...

    def fixed_batch(self, samples: Samples) -> int | None:
        """The batch size the model fixes on an input's batch axis, or None when it is dynamic."""
        for info in self.inputs:
            axis = samples.batch_axis(info.name)
            if info.name in samples.arrays and axis is not None and len(info.shape) > axis:
                dim = info.shape[axis]
                return dim if isinstance(dim, int) and dim > 0 else None
        return None

    def feeds(self, samples: Samples, start: int, stop: int) -> dict[str, np.ndarray]:
        given = samples.feed(start, stop)
        for info in self.inputs:  # a model with a fixed sequence length takes padded inputs padded to it
            if info.name in given and samples.padded(info.name) and len(info.shape) > 1:
                width, have = info.shape[1], given[info.name].shape[1]
                if isinstance(width, int) and width > have:
                    given[info.name] = np.pad(given[info.name], [(0, 0), (0, width - have)] +
                                              [(0, 0)] * (given[info.name].ndim - 2))
        return self.model_feeds(given)

    def model_feeds(self, given: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model's inputs out of `given`, each in the type the model declares."""
        missing = [info.name for info in self.inputs if info.name not in given]
        if missing:
            raise KeyError(f"the data has no array for model input(s) {missing}; it has {sorted(given)}")
        return {info.name: _contiguous(_cast(given[info.name], info.dtype)) for info in self.inputs}


def by_layer(collected: Mapping[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """Each layer's outputs over the samples: stacked samples first, or, where the samples differ in length
    (unpadded token sequences), one after another flattened (the diagnosis compares layers flat anyway)."""
    return {name: np.stack(parts) if len({p.shape for p in parts}) == 1 else np.concatenate([p.ravel() for p in parts])
            for name, parts in collected.items() if parts}


def _contiguous(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array) if array.ndim else array


def _cast(array: np.ndarray, dtype: np.dtype | None) -> np.ndarray:
    return array if dtype is None else array.astype(dtype, copy=False)


class Generator(ABC):
    """A loaded language model that generates greedily, one timestamp per token."""

    threads: int | None = None

    @abstractmethod
    def prompt_tokens(self, prompt: str) -> int: ...

    @abstractmethod
    def generate(self, prompt: str, max_tokens: int) -> list[float]:
        """perf_counter() at each generated token; end-of-sequence is suppressed, so timing always
        gets `max_tokens` tokens."""


# -- runtimes -------------------------------------------------------------------------------------------
class Runtime(ABC):
    """What every runtime offers: its versions, a model's size, and how a model is packaged."""

    framework: ClassVar[str]
    package_format: ClassVar[str]
    engine: ClassVar[str] = "cpu"  # what computes on the device: "cpu", or "npu" (whose published peaks estimate it)
    # the build host runs the model as the device would: False for an NPU runtime, whose host run is a simulator (its
    # outputs are the simulated accuracy; a host timing of it would say nothing of the device, so none is taken)
    timed_on_host: ClassVar[bool] = True

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Imports the runtime; the worker reports its memory footprint apart from the model's."""

    @abstractmethod
    def runtime_requirement(self, built_with: Mapping[str, str]) -> dict:
        """The package and version range a device installs to run the packaged model."""

    @abstractmethod
    def io_spec(self, artifact: ModelArtifact) -> dict: ...

    def size_bytes(self, artifact: ModelArtifact) -> int:
        return sum(os.path.getsize(p) for p in artifact.all_paths())

    def model_digest(self, artifact: ModelArtifact) -> str:
        """What makes two models the same model: by default their bytes. A format whose files also carry
        incidental text (generated names, tool metadata) says what to leave out."""
        from edgeopt.cache import artifact_digest

        return artifact_digest(artifact)

    def package_files(self, artifact: ModelArtifact) -> dict[str, Path]:
        """Package layout: the model file and the files beside it it needs, by name relative to it."""
        main = Path(artifact.path)
        return {str(p.relative_to(main.parent)): p for p in artifact.all_paths()}

    def package_entry(self, artifact: ModelArtifact) -> str:
        return Path(artifact.path).name

    def example_script(self) -> str:
        return bundled_script(f"{self.framework}_example.py")

    def mobile_files(self, artifact: ModelArtifact, scratch: Path) -> dict[str, Path]:
        """For phone targets: the model in the runtime's mobile form, then what else an app build needs, by name
        beside the model (none by default)."""
        return {}


def bundled_script(name: str) -> str:
    """A script that ships with edgeopt to run on a device (edgeopt/frameworks/examples/)."""
    from importlib.resources import files

    return (files("edgeopt.frameworks") / "examples" / name).read_text()


class GraphRuntime(Runtime):
    supports_layer_outputs: ClassVar[bool] = False

    def with_threads(self, artifact: ModelArtifact, threads: int) -> ModelArtifact:
        """The same model set to run on `threads` threads (one stream): what instruction counting needs,
        whatever the candidate's own settings say."""
        return artifact

    def threads_on(self, artifact: ModelArtifact, cores: int) -> int:
        """How many threads the candidate computes with on a device of `cores` cores."""
        return cores

    @abstractmethod
    def load(self, artifact: ModelArtifact, threads: int | None) -> GraphSession: ...

    def layer_outputs(self, artifact: ModelArtifact, samples: Samples) -> dict[str, np.ndarray]:
        """Every intermediate float output by layer name, samples first (only when supports_layer_outputs)."""
        raise NotImplementedError(f"{self.framework} does not expose intermediate outputs")

    def recorded_diagnosis(self, artifact: ModelArtifact) -> dict | None:
        """A per-layer analysis the framework's own toolkit made while building the candidate (kept in its
        lineage), in the diagnosis' form: reference, samples, compared_layers, layers [{layer, cosine,
        relative_error}]. None: edgeopt compares layer outputs itself (supports_layer_outputs)."""
        return None


class LlmRuntime(Runtime):
    @abstractmethod
    def perplexity(self, artifact: ModelArtifact, job: LlmJob, threads: int | None) -> dict: ...

    @abstractmethod
    def open_generator(self, artifact: ModelArtifact, job: LlmJob, threads: int | None) -> Generator: ...


# -- the adapter -----------------------------------------------------------------------------------------
class FrameworkAdapter(ABC):
    name: ClassVar[str]
    install: ClassVar[str]
    passes: ClassVar[Mapping[str, type[Pass]]]
    runtime: Runtime | None = None  # None: a pass provider only (e.g. an exporter)

    @abstractmethod
    def probe(self) -> Availability:
        """Installed and importable? Never imports the framework (probing must stay cheap and must not
        start a framework's telemetry) and never raises."""


def runtime_values(settings: PassConfig) -> dict:
    """Runtime settings as an artifact carries them (runtime_config): the ones set, unset ones left to the runtime."""
    return {k: v for k, v in settings.model_dump().items() if v is not None}


def runtime_settings_pass(framework: str, config: type[PassConfig], summary: str, name: str = "runtime",
                          ) -> type[Pass]:
    """A runtime-only pass (threads, hints, arenas): the same files, new settings for the runtime."""

    class RuntimeSettings(Pass):
        Config = config
        cost = 0

        def apply(self, settings: PassConfig, artifact: ModelArtifact, context: PassContext) -> ModelArtifact:
            entry = context.lineage(f"{framework}.{name}", settings)
            return artifact.model_copy(update={"runtime_config": runtime_values(settings),
                                               "lineage": (*artifact.lineage, entry)})

    RuntimeSettings.name = name
    RuntimeSettings.summary = summary
    RuntimeSettings.__name__ = RuntimeSettings.__qualname__ = f"{framework.title()}{name.title()}Settings"
    return RuntimeSettings
