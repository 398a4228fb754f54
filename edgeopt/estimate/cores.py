"""Core profiles (data in targets/cores/): how to emulate a core (qemu model, the /proc/cpuinfo that makes
runtimes pick its kernels) and how to model its speed (llvm-mca's scheduling model, a fallback IPC)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from edgeopt.catalog import Target
from edgeopt.resources import data_dir
from edgeopt.validation import validate_model
from edgeopt.yamlio import load_yaml


class Midr(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    implementer: str
    variant: str
    part: str


class CoreProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    uarch: str
    order: Literal["in-order", "out-of-order"]
    qemu_cpu: str
    midr: Midr
    features: list[str]
    llvm_mca_cpu: str
    fallback_ipc: float
    sources: dict[str, str] = {}

    def cpuinfo(self, cores: int) -> str:
        block = ("processor\t: {i}\nBogoMIPS\t: 48.00\nFeatures\t: {features}\nCPU implementer\t: {m.implementer}\n"
                 "CPU architecture: 8\nCPU variant\t: {m.variant}\nCPU part\t: {m.part}\nCPU revision\t: 0\n\n")
        return "".join(block.format(i=i, features=" ".join(self.features), m=self.midr) for i in range(cores))

    @property
    def has_dotprod(self) -> bool:
        return "asimddp" in self.features


def load_cores(folder: Path | None = None) -> dict[str, CoreProfile]:
    folder = folder or data_dir("targets") / "cores"
    profiles = [validate_model(CoreProfile, load_yaml(p), str(p)) for p in sorted(folder.glob("*.yaml"))]
    return {p.uarch: p for p in profiles}


def main_cluster(target: Target):
    """The cluster a single-model inference runs on: the fastest (big cores of a big.LITTLE SoC)."""
    clusters = target.cpu.clusters
    return max(clusters, key=lambda c: ((c.fp32_flops_per_cycle or 0) * (c.max_ghz or 0), c.cores)) if clusters else None


def core_for(target: Target, cores: dict[str, CoreProfile]) -> CoreProfile | None:
    cluster = main_cluster(target)
    return cores.get(cluster.uarch.lower()) if cluster else None
