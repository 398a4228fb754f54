"""Fitting the estimators to published measurements (targets/calibration.yaml) and saying how good they are.

A roofline says what a model would take at the engine's peak; real runtimes reach a fraction of it. That
fraction (the efficiency) is fitted per class — engine × runtime × precision — as the geometric mean of
ideal / published over the class's points, and judged leave-one-out: every point is predicted from the
others of its class, never from itself. The median and worst |error| are what a build's estimate band is.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from edgeopt.catalog import Catalog
from edgeopt.estimate.roofline import Engine, _group, compute_roofline, decode_roofline
from edgeopt.resources import data_dir
from edgeopt.validation import validate_model
from edgeopt.yamlio import load_yaml


class Point(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    target: str
    engine: Engine
    runtime: str
    precision: str
    model: str
    latency_ms: float
    gmacs: float | None = None
    weights_gb: float | None = None
    threads: int | None = None
    npu_cores: int = 1
    trust: str = "high"
    source: str
    quote: str
    conversion: str | None = None
    notes: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.engine, self.runtime, "any" if self.engine == "llm-decode" else _group(self.precision)


class CalibrationFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    points: list[Point]


@dataclass(frozen=True)
class Row:
    point: Point
    ideal_ms: float
    estimate_ms: float | None  # leave-one-out: from the other points of its class; None if it is alone
    efficiency: float | None

    @property
    def error(self) -> float | None:
        return None if self.estimate_ms is None else self.estimate_ms / self.point.latency_ms - 1


@dataclass(frozen=True)
class Efficiency:
    value: float
    error: float | None  # median leave-one-out |error| of the class (the estimate's band)
    points: int
    basis: str


class Calibration:
    def __init__(self, points: list[Point], catalog: Catalog, counts: dict | None = None):
        self.points, self.catalog, self.counts = points, catalog, counts or {}

    def ideal_ms(self, point: Point) -> float:
        target = self.catalog.resolve(point.target)
        if point.engine == "llm-decode":
            return decode_roofline(target, point.weights_gb * 1e9).ideal_ms
        return compute_roofline(target, point.engine, {point.precision: point.gmacs * 1e9}, threads=point.threads,
                                npu_cores=point.npu_cores).ideal_ms

    def _fit(self, points: list[Point]) -> float | None:
        ratios = [self.ideal_ms(p) / p.latency_ms for p in points]
        return math.exp(statistics.fmean(math.log(r) for r in ratios)) if ratios else None

    @property
    def fitted(self) -> list[Point]:
        """Points the fits use: all but those the research marked low-trust (shown, never fitted)."""
        return [p for p in self.points if p.trust != "low"]

    def leave_one_out(self) -> list[Row]:
        rows = []
        for point in self.points:
            others = [p for p in self.fitted if p.key == point.key and p.id != point.id]
            efficiency = self._fit(others)
            ideal = self.ideal_ms(point)
            rows.append(Row(point, ideal, ideal / efficiency if efficiency else None, efficiency))
        return rows

    def efficiency(self, engine: str, runtime: str, precision: str) -> Efficiency | None:
        """The fitted efficiency for a class, falling back to the engine's points of any runtime."""
        key = (engine, runtime, "any" if engine == "llm-decode" else _group(precision))
        rows = self.leave_one_out()
        for basis, members in ((f"{engine}/{runtime}/{key[2]}", [p for p in self.fitted if p.key == key]),
                               (f"{engine}, any runtime", [p for p in self.fitted if p.engine == engine])):
            if members:
                errors = [abs(r.error) for r in rows if r.point in members and r.error is not None]
                return Efficiency(self._fit(members), statistics.median(errors) if errors else None, len(members),
                                  f"{len(members)} published point(s) of {basis}")
        return None

    def cpu_factors(self, core) -> dict | None:
        """The instruction-count estimator's scale, fitted on the published ONNX Runtime points whose model was
        counted on its board's core (targets/calibration/counts.yaml), and its leave-one-out error."""
        pairs = self.count_pairs()
        if not pairs:
            return None
        ratios = [published / estimated for _, published, estimated in pairs]
        scale = math.exp(statistics.fmean(math.log(r) for r in ratios))
        errors = [abs(e) for e in self.count_errors(pairs)]
        where = ", ".join(point.id for point, _, _ in pairs)
        return {"scale": scale, "error": statistics.median(errors) if errors else None,
                "calibration": f"scale {scale:.2f} fitted on {len(pairs)} published ONNX Runtime point(s) ({where})"
                               + (f", ±{statistics.median(errors):.0%} leave-one-out" if errors else "")}

    def count_pairs(self) -> list[tuple[Point, float, float]]:
        """(point, published ms, uncalibrated instruction-count estimate ms) for every published ONNX Runtime
        point whose model was counted on its board's core."""
        runs = self.counts.get("runs", []) if self.counts else []
        pairs = []
        for point in self.fitted:
            if point.runtime != "onnxruntime" or point.engine != "cpu":
                continue
            target = self.catalog.resolve(point.target).id
            for run in runs:
                if (run["model"].replace("_", "") == point.model.replace("-", "").replace("_", "")
                        and self.catalog.resolve(run["target"]).id == target and run["variant"] == point.precision):
                    pairs.append((point, point.latency_ms, run["estimate_ms_all_cores"]))
        return pairs

    @staticmethod
    def count_errors(pairs) -> list[float]:
        """Leave-one-out: each point's estimate scaled by the others' fitted scale."""
        errors = []
        for i, (_, published, estimated) in enumerate(pairs):
            others = [p / e for j, (_, p, e) in enumerate(pairs) if j != i]
            if others:
                scale = math.exp(statistics.fmean(math.log(r) for r in others))
                errors.append(estimated * scale / published - 1)
        return errors

    def summary(self) -> dict:
        rows = [r for r in self.leave_one_out() if r.error is not None and r.point.trust != "low"]
        errors = [abs(r.error) for r in rows]
        ratios = [max(r.estimate_ms / r.point.latency_ms, r.point.latency_ms / r.estimate_ms) for r in rows]
        return {"points": len(self.points), "predicted": len(errors),
                "median_abs_error": statistics.median(errors) if errors else None,
                "worst_abs_error": max(errors) if errors else None,
                "worst_ratio": max(ratios) if ratios else None}


def load_calibration(catalog: Catalog, path: Path | None = None) -> Calibration:
    folder = path.parent if path else data_dir("targets") / "calibration"
    path = path or folder / "points.yaml"
    counts_file = folder / "counts.yaml"
    counts = load_yaml(counts_file) if counts_file.exists() else None
    return Calibration(validate_model(CalibrationFile, load_yaml(path), str(path)).points, catalog, counts)


def render(calibration: Calibration, target_id: str | None = None) -> str:
    rows = [r for r in calibration.leave_one_out() if target_id is None or r.point.target == target_id]
    lines = [f"{'point':34} {'class':28} {'published ms':>12} {'estimate ms':>11} {'error':>7}  source"]
    for r in rows:
        p = r.point
        cls = "/".join(p.key)
        estimate = f"{r.estimate_ms:11.2f}" if r.estimate_ms is not None else f"{'(alone)':>11}"
        error = f"{r.error:+7.0%}" if r.error is not None else f"{'-':>7}"
        trust = " (low trust: shown, not fitted)" if p.trust == "low" else ""
        lines.append(f"{p.id:34} {cls:28} {p.latency_ms:12.2f} {estimate} {error}  {p.source[:70]}{trust}")
    shown = [abs(r.error) for r in rows if r.error is not None and r.point.trust != "low"]
    overall = calibration.summary()
    if shown and target_id is not None:  # one target's points, then all of them
        lines.append(f"\nthese {len(shown)} points: median |error| {statistics.median(shown):.0%}, worst {max(shown):.0%}")
    lines.append(f"{'' if target_id is not None else chr(10)}all {overall['predicted']} fitted points: median |error| {overall['median_abs_error']:.0%}, "
                 f"worst {overall['worst_abs_error']:.0%} (leave-one-out: each point estimated from the others of "
                 "its class; low-trust points are shown, not fitted or counted)")
    pairs = calibration.count_pairs()
    if pairs:
        lines.append("\ninstruction-count estimator (ONNX Runtime's aarch64 build counted under qemu as the board's core; "
                     "targets/calibration/counts.yaml):")
        lines.append(f"{'point':34} {'uncalibrated estimate':28} {'published ms':>12} {'estimate ms':>11} {'error':>7}")
        for (point, published, estimated), error in zip(pairs, calibration.count_errors(pairs)):
            loo = published * (1 + error)
            raw = f"{estimated:.1f} ms ({estimated / published - 1:+.0%})"
            lines.append(f"{point.id:34} {raw:28} {published:12.2f} {loo:11.2f} {error:+7.0%}")
        lines.append("(the estimate column is leave-one-out: scaled by the other points' fit; with two points each is "
                     "predicted from the other board's)")
    return "\n".join(lines)
