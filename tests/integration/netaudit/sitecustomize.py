"""Loaded by every Python process started with this folder on PYTHONPATH: records each attempt to
open a network connection or resolve a host name in $EDGEOPT_NET_AUDIT, and refuses it."""

import os
import socket

_LOG = os.environ.get("EDGEOPT_NET_AUDIT")

if _LOG:
    _connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def _record(what: str) -> None:
        with open(_LOG, "a") as f:
            f.write(f"{os.getpid()} {what}\n")

    def connect(self, address):
        if self.family == socket.AF_UNIX:
            return _connect(self, address)
        _record(f"connect {address!r}")
        raise OSError("network access refused by the test's audit")

    def getaddrinfo(host, *args, **kwargs):
        if host not in (None, "localhost", "127.0.0.1", "::1"):
            _record(f"resolve {host!r}")
            raise socket.gaierror("name resolution refused by the test's audit")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.getaddrinfo = getaddrinfo
