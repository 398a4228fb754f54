"""Pass recipes, read from pipelines/: per framework, the ordered stages and each pass's option space."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeopt.resources import data_dir
from edgeopt.validation import validate_model
from edgeopt.yamlio import load_yaml

StageName = Literal["convert", "quantize", "accelerate"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class When(_Strict):
    tasks: list[str] | None = None
    source_formats: list[str] | None = None
    target_isa_any: list[str] | None = Field(
        default=None, description="only when the target's CPU has one of these ISA features (e.g. avx512_bf16)")

    def admits(self, task: str, source_format: str, target_isa: tuple[str, ...] | list[str] = ()) -> tuple[bool, str]:
        if self.tasks is not None and task not in self.tasks:
            return False, f"only for tasks {self.tasks}, model task is {task!r}"
        if self.source_formats is not None and source_format not in self.source_formats:
            return False, f"only for sources {self.source_formats}, source is {source_format!r}"
        if self.target_isa_any is not None and not set(self.target_isa_any) & set(target_isa):
            return False, f"only for CPUs with {' or '.join(self.target_isa_any)}; the target has none of them"
        return True, ""


class RecipeEntry(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="candidate id stem, e.g. int8-dynamic")
    pass_name: str = Field(alias="pass")
    role: Literal["candidate", "baseline"] = "candidate"
    input: str = Field(
        default="convert", pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="source: the manifest's model; previous: the step before in this recipe; convert: this "
        "recipe's last convert output (else the baseline); baseline: the baseline model; leader: this "
        "framework's best candidate so far that keeps accuracy; leader-memory: the one of those with the least "
        "peak memory; or the id of an earlier entry of this recipe "
        "(e.g. quantizers that run on the fused graph as well as on the basic-optimized one)",
    )
    config: dict = Field(default_factory=dict)
    space: dict[str, list] = Field(default_factory=dict, description="options crossed into one candidate each")
    when: When = When()
    escalates: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="an earlier entry (without a space) that this one can only buy accuracy from, at no gain in "
        "speed or memory (nodes back in float, an importance matrix, accuracy control): a cheap-first search tries "
        "it only when that entry's candidate loses accuracy, and a space's points in order, each only when the one "
        "before loses accuracy too")
    why: str = ""

    @model_validator(mode="after")
    def _space_apart_from_config(self):
        both = set(self.config) & set(self.space)
        if both:
            raise ValueError(f"keys in both config and space: {sorted(both)}")
        if self.escalates and len(self.space) > 1:
            raise ValueError(f"escalates {self.escalates}: a space of one option at most (its values are the "
                             f"escalation's steps, in order), got {sorted(self.space)}")
        return self

    def expand(self) -> list[tuple[str, dict]]:
        """(candidate id, config) for each point of the option space."""
        if not self.space:
            return [(self.id, dict(self.config))]
        keys = list(self.space)
        crossed = list(itertools.product(*(self.space[k] for k in keys)))
        # the points one option away from the first come before those two or more away: a cheap-first search
        # has then measured each option on its own when it reaches the combinations, and can prune those that
        # repeat an option that lost (edgeopt.pruning)
        first = crossed[0]
        crossed.sort(key=lambda values: sum(v != f for v, f in zip(values, first)))
        points = []
        for values in crossed:
            suffix = "-".join(f"{_short(k)}{_value(v)}" for k, v in zip(keys, values))
            points.append((f"{self.id}-{suffix}", {**self.config, **dict(zip(keys, values))}))
        return points


def _short(key: str) -> str:
    return "".join(part[0] for part in key.split("_"))


def _value(value) -> str:
    return {True: "on", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)


INPUT_KEYWORDS = ("source", "previous", "convert", "baseline", "leader", "leader-memory")


class Stage(_Strict):
    name: StageName
    passes: list[RecipeEntry]


class Recipe(_Strict):
    framework: str
    description: str = ""
    stages: list[Stage]

    @model_validator(mode="after")
    def _inputs_name_earlier_entries(self):
        earlier: list[str] = []  # entries that make one step each (an entry with a space makes several)
        for stage in self.stages:
            for entry in stage.passes:
                if entry.input not in INPUT_KEYWORDS and entry.input not in earlier:
                    raise ValueError(f"{entry.id}: input {entry.input!r} is neither one of {', '.join(INPUT_KEYWORDS)} "
                                     f"nor an earlier entry without a space ({', '.join(earlier) or 'none'})")
                if entry.escalates and entry.escalates not in earlier:
                    raise ValueError(f"{entry.id}: escalates {entry.escalates!r}, which is not an earlier entry "
                                     f"without a space ({', '.join(earlier) or 'none'})")
                if not entry.space:
                    earlier.append(entry.id)
        return self


def load_recipes(folder: Path | None = None) -> dict[str, Recipe]:
    folder = folder or data_dir("pipelines")
    recipes = {}
    for path in sorted(folder.glob("*.yaml")):
        recipe = validate_model(Recipe, load_yaml(path), str(path))
        recipes[recipe.framework] = recipe
    return recipes
