"""Loaded into every worker of a test build (PYTHONPATH): breaks a piece of edgeopt's own worker code,
the memory reading every measurement makes, as a bug would."""

import edgeopt.measure.system as system


def _broken():
    raise RuntimeError("deliberately broken worker (tests/integration/broken_worker)")


system.current_rss_mb = _broken
