"""Cycles of the hot blocks on a target core, from llvm-mca's scheduling model of that core.

Each block is a loop body as qemu translated it; llvm-mca gives its cycles per iteration on the core
(no caches, no branch misses: an L1-resident lower bound). Blocks repeat across candidates (the same
runtime kernels), so results are kept in a small cache keyed by the core and the block's text.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgeopt.estimate.counts import Counts

ITERATIONS = 100
_BRANCH = re.compile(r"^(b(\.\w+)?|bl|cbn?z|tbn?z)\s")


@dataclass(frozen=True)
class CycleEstimate:
    cycles: float  # one inference, every instruction (the uncovered ones at the covered blocks' IPC)
    ipc: float
    coverage: float  # share of the inference's instructions the modelled blocks cover
    blocks: int
    failed_blocks: int
    method: str


def llvm_mca() -> str | None:
    return shutil.which("llvm-mca") or shutil.which("llvm-mca-14")


def cycles_on(counts: Counts, mcpu: str, cache_file: Path | None, fallback_ipc: float) -> CycleEstimate:
    tool = llvm_mca()
    if tool is None or not counts.blocks:
        return CycleEstimate(counts.instructions / fallback_ipc, fallback_ipc, 0.0, 0, 0,
                             f"fallback IPC {fallback_ipc} (llvm-mca {'missing' if tool is None else 'had no blocks'})")
    memo = _load(cache_file)
    cycles = covered = failed = 0
    for block in counts.blocks:
        per_iteration = _block_cycles(tool, mcpu, block.disassembly, memo)
        if per_iteration is None:
            failed += 1
            continue
        cycles += per_iteration * block.executions
        covered += block.instructions * block.executions
    _save(cache_file, memo)
    if covered == 0:
        return CycleEstimate(counts.instructions / fallback_ipc, fallback_ipc, 0.0, len(counts.blocks), failed,
                             f"fallback IPC {fallback_ipc} (llvm-mca parsed no block)")
    ipc = covered / cycles
    total = counts.profiled_instructions or counts.instructions
    # the uncovered tail runs at the covered blocks' IPC; scaled to the steady-state count
    estimate = (cycles + max(total - covered, 0) / ipc) * counts.instructions / total
    return CycleEstimate(estimate, ipc, covered / total, len(counts.blocks), failed,
                         f"llvm-mca -mcpu={mcpu} on the {len(counts.blocks)} hottest blocks")


def _block_cycles(tool: str, mcpu: str, disassembly: tuple[str, ...], memo: dict) -> float | None:
    # a branch back to the block's start makes it a loop body for llvm-mca; other targets are local labels
    lines = [re.sub(r"#0x[0-9a-f]+$", ".Lself", line) if _BRANCH.match(line) else line for line in disassembly]
    source = ".Lself:\n" + "\n".join(lines) + "\n"
    key = hashlib.sha256(f"{mcpu}\n{source}".encode()).hexdigest()
    if key not in memo:
        run = subprocess.run([tool, "-mtriple=aarch64", f"-mcpu={mcpu}", f"-iterations={ITERATIONS}"], input=source,
                             capture_output=True, text=True)
        found = re.search(r"Total Cycles:\s+(\d+)", run.stdout)
        memo[key] = int(found.group(1)) / ITERATIONS if run.returncode == 0 and found else None
    return memo[key]


def _load(path: Path | None) -> dict:
    if path is None or not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {}


def _save(path: Path | None, memo: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{id(memo)}.partial")
    partial.write_text(json.dumps(memo))
    partial.replace(path)
