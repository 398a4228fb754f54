"""The child-process entry point of the worker protocol (operations live in edgeopt.operations).

  python -m edgeopt.worker REQUEST.json RESPONSE.json   one operation, JSON in and out, files by path
  python -m edgeopt.worker --serve REPLY_FD             a timing session: JSON lines on stdin (a
                                                        TimingRequest, then WindowRequests), one JSON
                                                        Response per line written to REPLY_FD

Framework output goes to stdout/stderr (the parent's log file), never into the protocol, so a chatty
framework cannot corrupt a response. A crash or hang costs one candidate; a bug in edgeopt's own code
comes back as status "internal".
"""

from __future__ import annotations

# What edgeopt's own modules keep resident is read first, before they load: a timing process reports its
# memory without them, as a deployed process that holds only numpy, the runtime and the model would use
# (measured: pydantic and the protocol's models add 17-20 MB, which shrank every peak-RSS cut: MiniLM's
# int8 session peaked at 110 MB in the worker against 89 MB in a bare process, the fp32 one 213 MB against 186).
import os

import numpy  # noqa: F401  every runtime's process holds numpy: it counts as the model's, not edgeopt's


def _resident_bytes() -> int | None:
    # the standard library alone (nothing of edgeopt's is loaded yet), and nothing that raises: a failure
    # here, before the protocol can answer, would read as a dead worker rather than a bug of edgeopt's
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


_BEFORE_EDGEOPT_BYTES = _resident_bytes()

import functools  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from pydantic import TypeAdapter  # noqa: E402

from edgeopt.measure.system import current_rss_mb  # noqa: E402
from edgeopt.operations import ONE_SHOT, TimingSession, respond  # noqa: E402
from edgeopt.protocol import Request, Response, TimingRequest, WindowRequest  # noqa: E402

_REQUEST = TypeAdapter(Request)


def _edgeopt_rss_mb() -> float | None:
    """Resident memory of edgeopt's own modules in this process, read before the runtime loads (None
    where /proc cannot say)."""
    now = current_rss_mb()
    if now is None or _BEFORE_EDGEOPT_BYTES is None:
        return None
    return max(0.0, now - _BEFORE_EDGEOPT_BYTES / 1e6)


def one_shot(request_path: Path, response_path: Path) -> None:
    def call():
        request = _REQUEST.validate_json(request_path.read_text())
        return ONE_SHOT[request.op](request)

    _write_atomically(response_path, respond(call))


def serve(reply_fd: int) -> None:
    with os.fdopen(reply_fd, "w", buffering=1) as reply:
        session: TimingSession | None = None
        for line in sys.stdin:
            if not line.strip():
                continue
            if session is None:
                opened: list[TimingSession] = []
                response = respond(functools.partial(_open_session, line, opened))
                session = opened[0] if opened else None
            else:
                response = respond(functools.partial(_timed_window, session, line))
            reply.write(response.model_dump_json() + "\n")
            if response.status != "ok" and session is None:
                return


def _open_session(line: str, opened: list[TimingSession]):
    opened.append(TimingSession(TimingRequest.model_validate_json(line), edgeopt_rss_mb=_edgeopt_rss_mb()))
    return opened[0].info


def _timed_window(session: TimingSession, line: str):
    return session.window(WindowRequest.model_validate_json(line))


def _write_atomically(path: Path, response: Response) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(response.model_dump_json())
    partial.replace(path)  # the parent never reads a half-written response


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--serve":
        serve(int(argv[1]))
    else:
        one_shot(Path(argv[0]), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
