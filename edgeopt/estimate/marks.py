"""Marks a qemu plugin sees from inside the emulated process: a failing lseek on fd -1 with the tag in the
offset. Harmless anywhere else (EBADF), so the same worker code runs natively and under emulation."""

from __future__ import annotations

import os

MAGIC = 0x5EED0000
FIRST_MARK = 10  # marks 10, 11, 12, ... bracket the counted inferences; 11→12 is the 2nd (steady state)


def mark(tag: int) -> None:
    try:
        os.lseek(-1, MAGIC + tag, 0)
    except OSError:
        pass
