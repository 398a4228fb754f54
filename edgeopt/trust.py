"""Code a manifest makes edgeopt run: hooks are `module:function` names imported from the manifest's folder.

A manifest from someone else (a pull request, a downloaded example) can therefore run Python on the machine
that builds it. `hooks_in` lists every such place; `refuse_hooks` stops before anything runs when the
build may not run code from the manifest (`--no-hooks`, EDGEOPT_NO_HOOKS=1).
"""

from __future__ import annotations

from collections.abc import Mapping

from edgeopt.errors import ManifestError, Problem

NO_HOOKS_ENV = "EDGEOPT_NO_HOOKS"
WHY = "--no-hooks / EDGEOPT_NO_HOOKS=1: this build may not run code from the manifest's folder"


def hooks_in(manifest) -> list[str]:
    """Every place the manifest names Python code edgeopt would import and call, as "key: module:function".

    The data sources of evaluation and calibration of `type: hook` (their `function`) and the metric's
    `decode`. Pure: reads the validated manifest, imports nothing."""
    found = []
    for key, source in (("evaluation.data", manifest.evaluation.data), ("calibration.data", manifest.calibration.data)):
        if source is not None and getattr(source, "type", None) == "hook":
            found.append(f"{key}.function: {source.function}")
    decode = manifest.evaluation.metric.decode
    if decode:
        found.append(f"evaluation.metric.decode: {decode}")
    return found


def refuse_hooks(manifest, file: str) -> None:
    """Raise a ManifestError (exit 2) listing the manifest's hooks, if it has any."""
    hooks = hooks_in(manifest)
    if hooks:
        problems = [Problem(key, target) for key, _, target in (hook.partition(": ") for hook in hooks)]
        raise ManifestError(file, problems=problems,
                            summary=f"names Python code to run, refused ({WHY}); build without that only if you "
                            "trust the manifest and its folder")


def hooks_forbidden(environ: Mapping[str, str], flag: bool = False) -> bool:
    """--no-hooks, or EDGEOPT_NO_HOOKS set to anything but empty, 0, false or no."""
    value = str(environ.get(NO_HOOKS_ENV, "")).strip().lower()
    return flag or value not in ("", "0", "false", "no", "off")
