"""What a build shows while it runs: a live table on a terminal, plain lines elsewhere, or nothing."""

from __future__ import annotations

import time
from typing import Protocol, TextIO


class BuildProgress(Protocol):
    def message(self, text: str) -> None: ...

    def step(self, step_id: str, state: str, detail: str = "") -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def message(self, text: str) -> None:
        pass

    def step(self, step_id: str, state: str, detail: str = "") -> None:
        pass

    def close(self) -> None:
        pass


class PlainProgress:
    """One line per event: for logs, CI and pipes."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def step(self, step_id: str, state: str, detail: str = "") -> None:
        print(f"  {step_id}: {state}" + (f" — {detail}" if detail else ""), file=self.stream, flush=True)

    def close(self) -> None:
        pass


_STYLE = {"queued": "dim", "building": "cyan", "measuring": "cyan", "timing": "cyan", "done": "green",
          "cached": "green", "failed": "red", "skipped": "yellow"}


class RichProgress:
    """A live table of every step with its state and latest figures, redrawn in place."""

    def __init__(self, stream: TextIO):
        from rich.console import Console
        from rich.live import Live

        self._console = Console(file=stream)
        self._steps: dict[str, tuple[str, str, float]] = {}
        self._messages: list[str] = []
        self._started = time.monotonic()
        self._live = Live(self._render(), console=self._console, refresh_per_second=4, transient=False)
        self._live.start()

    def _render(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        table.add_column("step")
        table.add_column("state")
        table.add_column("detail", overflow="fold")
        for step_id, (state, detail, _) in self._steps.items():
            table.add_row(step_id, Text(state, style=_STYLE.get(state, "")), detail)
        elapsed = time.monotonic() - self._started
        header = Text(self._messages[-1] if self._messages else "", style="bold")
        return Group(header, table, Text(f"{elapsed:.0f} s", style="dim"))

    def message(self, text: str) -> None:
        self._messages.append(text)
        self._live.update(self._render())

    def step(self, step_id: str, state: str, detail: str = "") -> None:
        self._steps[step_id] = (state, detail, time.monotonic())
        self._live.update(self._render())

    def close(self) -> None:
        self._live.update(self._render())
        self._live.stop()


def make_progress(stream: TextIO, quiet: bool) -> BuildProgress:
    if quiet:
        return NoProgress()
    if getattr(stream, "isatty", lambda: False)():
        try:
            return RichProgress(stream)
        except ImportError:  # rich is a core dependency, but a trimmed install should still build
            pass
    return PlainProgress(stream)
