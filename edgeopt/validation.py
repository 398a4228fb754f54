"""Turns pydantic validation errors into messages a user can act on: file, key, expectation, choices."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from edgeopt.errors import ManifestError, closest


def validate_model(model_cls: type[BaseModel], data: Any, file: str, context: dict | None = None):
    try:
        return model_cls.model_validate(data, context=context)
    except ValidationError as exc:
        raise as_manifest_error(exc, model_cls, file) from None


def as_manifest_error(exc: ValidationError, model_cls: type[BaseModel], file: str) -> ManifestError:
    error = exc.errors()[0]
    loc, parent = _walk(model_cls, [part for part in error["loc"] if not _is_union_tag(part)])
    key = ".".join(str(part) for part in loc) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        valid = sorted(_fields_of(parent))
        return ManifestError(
            file, key, f"unknown key; expected one of: {', '.join(valid)}", closest(str(loc[-1]), valid)
        )
    if kind in ("literal_error", "union_tag_invalid", "enum"):
        ctx = error.get("ctx", {})
        expected = ctx.get("expected", "") or ctx.get("expected_tags", "")
        options = [o.strip().strip("'\"") for o in str(expected).replace(" or ", ",").split(",") if o.strip()]
        got = error.get("input")
        if kind == "union_tag_invalid":  # the input is the whole mapping; the tag is one key of it
            discriminator = str(ctx.get("discriminator", "type")).strip("'")
            key, got = f"{key}.{discriminator}", ctx.get("tag")
        return ManifestError(file, key, f"got {got!r}; expected one of: {', '.join(options)}",
                             closest(str(got), options))
    if kind == "missing":
        return ManifestError(file, key, "required key is missing")
    return ManifestError(file, key, f"{error['msg']} (got {error.get('input')!r})")


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the chosen member of a union (e.g. 'images' or 'function-after[...]') in the path.
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _walk(model_cls: Any, loc: list) -> tuple[list, Any]:
    """The path as the user wrote it (without the member tags pydantic puts in the path of a
    discriminated union: 'images' in evaluation.data.images.size), and the annotation holding its
    last key (whose fields are the valid choices when that key is unknown)."""
    cleaned, current, parent = [], model_cls, model_cls
    for part in loc:
        member = _union_member_tagged(current, part)
        if member is not None:
            current = member
            continue
        cleaned.append(part)
        parent, current = current, (_step_into(current, part) if current is not None else None)
    return cleaned, parent


def _union_member_tagged(annotation: Any, part: Any) -> Any:
    members = _candidates(annotation)
    if len(members) < 2 or not isinstance(part, str):
        return None
    for member in members:
        if isinstance(member, type) and issubclass(member, BaseModel) and "type" in member.model_fields:
            if part in typing.get_args(member.model_fields["type"].annotation):
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
