"""A backend environment is built in a staging folder and moved into place: its scripts must run from where it is
(a real venv, made and moved the way BackendEnv.create does it)."""

import subprocess
import sys

from edgeopt.envs.backend import repoint_scripts
from edgeopt.envs.base import staged


def test_a_moved_venvs_console_scripts_run_from_where_it_is(tmp_path):
    final = tmp_path / "olive"
    with staged(final) as staging:
        built_at = staging
        subprocess.run([sys.executable, "-m", "venv", str(staging / "venv")], check=True)
    pip = final / "venv" / "bin" / "pip"
    assert str(built_at).encode() in pip.read_bytes()  # as venv wrote it: the staging folder, now gone
    assert not built_at.exists()
    changed = repoint_scripts(final / "venv" / "bin", built_at / "venv", final / "venv")
    assert "pip" in changed and "activate" in changed
    assert (final / "venv" / "bin" / "python").is_symlink()  # the interpreter link is left as it is
    done = subprocess.run([str(pip), "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and str(final / "venv") in done.stdout, done.stderr
    assert repoint_scripts(final / "venv" / "bin", built_at / "venv", final / "venv") == []  # nothing left to change
