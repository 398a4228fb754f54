import os

import pytest


@pytest.fixture(scope="session")
def aarch64_env():
    """The aarch64 emulation environment `make test` creates (`edgeopt env create aarch64`). Missing: the
    tests skip, unless EDGEOPT_REQUIRE_EMULATION=1 (CI) makes that a failure."""
    from edgeopt.envs import environment

    env = environment("aarch64", os.environ)
    status = env.status()
    if not status.present:
        if os.environ.get("EDGEOPT_REQUIRE_EMULATION") == "1":
            pytest.fail(f"the aarch64 environment is required here: {status.detail}")
        pytest.skip(f"aarch64 emulation environment: {status.detail}")
    return env
