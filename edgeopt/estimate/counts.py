"""Reading what the a64count plugin wrote: instruction counts at each mark, and the hot blocks of the
steady-state inference with their execution counts and disassembly."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

CLASSES = ("int_dp", "branch_sys", "ldst_gpr", "ldst_simd", "simd_fp", "of_which_sdot_udot",
           "of_which_smmla_ummla", "of_which_fmla_vec")


@dataclass(frozen=True)
class Block:
    pc: str
    instructions: int  # in the block
    executions: int  # in the profiled inference
    disassembly: tuple[str, ...]


@dataclass(frozen=True)
class Counts:
    """One steady-state inference as the plugin saw it."""

    instructions: int
    classes: dict[str, int]
    first_inference: int  # the first counted inference: one-time packing and allocation on top
    blocks: tuple[Block, ...] = field(default=())
    profiled_instructions: int = 0  # the window the blocks cover (the same inference)

    @property
    def coverage(self) -> float:
        covered = sum(b.instructions * b.executions for b in self.blocks)
        return covered / self.profiled_instructions if self.profiled_instructions else 0.0


class CountsMissing(ValueError):
    """The plugin log lacks the marks of the counted inferences."""


_MARK = re.compile(r"A64COUNT mark(\d+) insns=(\d+)((?: \w+=\d+)*)")
_BLOCK = re.compile(r"TB pc=(0x[0-9a-f]+) n=(\d+) exec=(\d+)\n((?:  .*\n)*)")


def read_counts(log: Path, first_mark: int) -> Counts:
    text = log.read_text(errors="replace") if log.exists() else ""
    marks = {}
    for number, total, rest in _MARK.findall(text):
        marks[int(number)] = {"insns": int(total), **{k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", rest)}}
    steady, after = first_mark + 1, first_mark + 2
    if not all(m in marks for m in (first_mark, steady, after)):
        raise CountsMissing(f"the instruction counter wrote no marks {first_mark}..{after} in {log}")
    classes = {c: marks[after].get(c, 0) - marks[steady].get(c, 0) for c in CLASSES}
    window = re.search(r"A64PROF window=\S+ insns=(\d+)", text)
    blocks = tuple(Block(pc, int(n), int(ex), tuple(line.strip() for line in dis.strip("\n").split("\n")))
                   for pc, n, ex, dis in _BLOCK.findall(text))
    return Counts(instructions=marks[after]["insns"] - marks[steady]["insns"], classes=classes,
                  first_inference=marks[steady]["insns"] - marks[first_mark]["insns"], blocks=blocks,
                  profiled_instructions=int(window.group(1)) if window else 0)


def plugin_arguments(plugin: Path, log: Path, first_mark: int, top: int = 300) -> str:
    """qemu arguments that count instructions (by class) and profile the steady-state inference."""
    return (f"-plugin {plugin},classes=on,profile=on,top={top},pstart={first_mark + 1},pend={first_mark + 2} "
            f"-d plugin -D {log}")
