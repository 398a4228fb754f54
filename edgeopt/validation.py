"""Turns pydantic validation errors into messages a user can act on: file, key, expectation, choices."""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from edgeopt.errors import ManifestError, Problem, closest, quote, shorten


def validate_model(model_cls: type[BaseModel], data: Any, file: str, context: dict | None = None):
    try:
        return model_cls.model_validate(data, context=context)
    except ValidationError as exc:
        raise as_manifest_error(exc, model_cls, file) from None
    except RecursionError:  # a self-referencing value; the YAML loader refuses those, a caller's dict may not
        raise ManifestError(file, "", "a value contains itself (a cycle): not a manifest") from None


MAX_ERRORS = 200  # pydantic errors turned into problems; the rest are counted


def as_manifest_error(exc: ValidationError, model_cls: type[BaseModel], file: str) -> ManifestError:
    """Every problem pydantic found, one per key (errors about one key are merged), in the file's order."""
    by_key: dict[str, list[Problem]] = {}
    for error in exc.errors(include_url=False)[:MAX_ERRORS]:
        problem = _problem(error, model_cls)
        by_key.setdefault(problem.key, []).append(problem)
    merged = [_merge(found) for found in by_key.values()]
    more = exc.error_count() - MAX_ERRORS  # errors beyond those looked at, counted as one problem each
    return ManifestError(file, problems=merged, count=len(merged) + max(more, 0))


def _problem(error: dict, model_cls: type[BaseModel]) -> Problem:
    kind = error["type"]
    parts = list(error["loc"])
    last = parts.pop() if kind == "extra_forbidden" and parts else None  # the user's key, whatever it looks like
    parts = [part for part in parts if not _is_union_tag(part)] + ([last] if last is not None else [])
    loc, parent, here = _walk(model_cls, parts)
    key = ".".join(shorten(str(part), 60) for part in loc) or "(top level)"
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        valid = sorted(_fields_of(parent))
        near = closest(str(loc[-1]), valid) if loc else []
        if near:
            return Problem(key, f"unknown key; did you mean {' or '.join(near)}?", tuple(near))
        return Problem(key, f"unknown key; expected one of: {', '.join(valid)}" if valid else "unknown key")
    if kind in ("literal_error", "union_tag_invalid", "enum"):
        expected = ctx.get("expected", "") or ctx.get("expected_tags", "")
        options = [o.strip().strip("'\"") for o in str(expected).replace(" or ", ",").split(",") if o.strip()]
        got = error.get("input")
        if kind == "union_tag_invalid":  # the input is the whole mapping; the tag is one key of it
            discriminator = str(ctx.get("discriminator", "type")).strip("'")
            key, got = f"{key}.{discriminator}", ctx.get("tag")
        return Problem(key, f"got {quote(got)}; expected one of: {', '.join(options)}",
                       tuple(closest(str(got), options)))
    if kind == "union_tag_not_found":
        discriminator = str(ctx.get("discriminator", "type")).strip("'")
        tags = _tags_of(here)
        return Problem(key, f"needs `{discriminator}:` saying which kind it is"
                       + (f", one of: {', '.join(tags)}" if tags else ""))
    if kind == "missing":
        return Problem(key, "required key is missing")
    if kind == "invalid_key":
        return Problem(key, f"keys must be text (got {quote(error.get('input'))})")
    return Problem(key, f"{error['msg']} (got {quote(error.get('input'))})")


def _merge(problems: list[Problem]) -> Problem:
    """pydantic reports a value that fits no member of `int | str` once per member: say it once."""
    if len(problems) == 1:
        return problems[0]
    texts = list(dict.fromkeys(p.problem for p in problems))
    prefix, got = "Input should be ", ""
    if all(t.startswith(prefix) for t in texts):
        bodies = []
        for text in texts:
            body, _, tail = text[len(prefix):].partition(" (got ")
            bodies.append(body)
            got = got or (f" (got {tail}" if tail else "")
        return Problem(problems[0].key, prefix + " or ".join(dict.fromkeys(bodies)) + got)
    return Problem(problems[0].key, "; ".join(texts), problems[0].choices)


_TAG = re.compile(r"^[a-z][a-z0-9_-]*\[.*\]$|^function-")


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the member of a union it tried in the path: 'function-after[...]', 'list[int]'
    return isinstance(part, str) and bool(_TAG.match(part))


def _walk(model_cls: Any, loc: list) -> tuple[list, Any, Any]:
    """The path as the user wrote it (without the member tags pydantic puts in the path of a union:
    'images' in evaluation.data.images.size, 'int' in evaluation.metric.output.int), the annotation
    holding its last key (whose fields are the valid choices when that key is unknown), and the
    annotation at the path itself."""
    cleaned, current, parent = [], model_cls, model_cls
    for part in loc:
        member = _union_member_tagged(current, part)
        if member is not None:
            current = member
            continue
        if _plain_member_tag(current, part):
            continue
        cleaned.append(part)
        parent, current = current, (_step_into(current, part) if current is not None else None)
    return cleaned, parent, current


def _plain_member_tag(annotation: Any, part: Any) -> bool:
    """'int' or 'str' in the path of a value checked against `int | str`: the member tried, not a key."""
    members = _candidates(annotation)
    if len(members) < 2 or not isinstance(part, str):
        return False
    names = {getattr(m, "__name__", None) for m in members} | {str(m).lower() for m in members}
    return part in names or part.split("[", 1)[0] in names


def _tags_of(annotation: Any) -> list[str]:
    """The `type:` values a discriminated union accepts."""
    tags = []
    for member in _candidates(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel) and "type" in member.model_fields:
            tags += [str(t) for t in typing.get_args(member.model_fields["type"].annotation)]
    return tags


def _union_member_tagged(annotation: Any, part: Any) -> Any:
    members = _candidates(annotation)
    if len(members) < 2 or not isinstance(part, str):
        return None
    for member in members:
        if (isinstance(member, type) and issubclass(member, BaseModel) and "type" in member.model_fields
                and part in typing.get_args(member.model_fields["type"].annotation)):
            return member
    return None


def _fields_of(annotation: Any) -> set[str]:
    models = [m for m in _candidates(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]
    return {name for m in models for name in m.model_fields}


def _step_into(annotation: Any, part: Any) -> Any:
    for option in _candidates(annotation):
        if isinstance(part, int):
            args = typing.get_args(option)
            if typing.get_origin(option) in (list, tuple) and args:
                return args[0]
        elif isinstance(option, type) and issubclass(option, BaseModel) and part in option.model_fields:
            return option.model_fields[part].annotation
        elif typing.get_origin(option) is dict:
            return typing.get_args(option)[1]
    # A discriminated union puts the tag in loc; stay on the union and try its members next.
    return annotation if isinstance(part, str) else None


def _candidates(annotation: Any) -> list:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _candidates(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [c for arg in typing.get_args(annotation) for c in _candidates(arg)]
    return [annotation]
