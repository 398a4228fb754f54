"""The estimators' calibration: fitted on published points, judged leave-one-out, printed per target."""

from __future__ import annotations

import pytest

from edgeopt.catalog import load_catalog
from edgeopt.estimate.calibration import Calibration, Point, load_calibration, render


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def point(calibration_id: str, latency_ms: float, trust: str = "high", runtime: str = "onnxruntime",
          target: str = "rpi5") -> Point:
    return Point(id=calibration_id, target=target, engine="cpu", runtime=runtime, precision="fp32", model="m",
                 gmacs=1.0, latency_ms=latency_ms, trust=trust, source="a test", quote="none")


def by_id(calibration: Calibration) -> dict:
    return {row.point.id: row for row in calibration.leave_one_out()}


def test_the_shipped_points_are_enough_sourced_and_resolve(catalog):
    calibration = load_calibration(catalog)
    fitted = calibration.fitted
    assert len(fitted) >= 12  # the minimum of published measurements
    for p in calibration.points:
        assert p.source.strip() and p.quote.strip(), p.id
        catalog.resolve(p.target)  # raises on a target the catalog does not have
    summary = calibration.summary()
    # every fitted point with a partner in its class is predicted; none is predicted from itself
    assert summary["predicted"] == sum(1 for p in fitted if any(q.key == p.key and q.id != p.id for q in fitted))
    assert 0 < summary["median_abs_error"] <= summary["worst_abs_error"]


def test_consistent_points_predict_each_other_exactly(catalog):
    ideal = Calibration([point("a", 1.0)], catalog).ideal_ms(point("a", 1.0))
    # three boards' worth of the same class, each at 40% of the roofline: the fit is exact
    rows = by_id(Calibration([point(n, ideal / 0.4) for n in "abc"], catalog))
    for row in rows.values():
        assert row.efficiency == pytest.approx(0.4) and row.error == pytest.approx(0.0, abs=1e-12)


def test_a_point_is_never_predicted_from_itself(catalog):
    ideal = Calibration([], catalog).ideal_ms(point("a", 1.0))
    points = [point("a", ideal / 0.4), point("b", ideal / 0.4), point("odd", ideal / 0.1)]
    rows = by_id(Calibration(points, catalog))
    # the outlier is estimated from a and b alone (efficiency 0.4): it is off by the whole factor 4
    assert rows["odd"].estimate_ms == pytest.approx(ideal / 0.4) and rows["odd"].error == pytest.approx(-0.75)
    # a is estimated from b and the outlier: the geometric mean of 0.4 and 0.1
    assert rows["a"].efficiency == pytest.approx(0.2)


def test_a_point_alone_in_its_class_gets_no_estimate(catalog):
    rows = by_id(Calibration([point("a", 10.0), point("alone", 10.0, runtime="xnnpack")], catalog))
    assert rows["alone"].estimate_ms is None and rows["alone"].error is None


def test_low_trust_points_are_shown_but_never_fitted(catalog):
    ideal = Calibration([], catalog).ideal_ms(point("a", 1.0))
    trusted = [point("a", ideal / 0.4), point("b", ideal / 0.4)]
    with_doubt = Calibration([*trusted, point("doubtful", ideal / 0.01, trust="low")], catalog)
    rows = by_id(with_doubt)
    assert rows["a"].efficiency == pytest.approx(0.4)  # the low-trust point moved nothing
    assert rows["doubtful"].error == pytest.approx(0.01 / 0.4 - 1)  # but it is shown with its error
    assert with_doubt.summary()["predicted"] == 2
    assert "low trust: shown, not fitted" in render(with_doubt)


def test_instruction_count_pairs_are_judged_leave_one_out():
    pairs = [(None, 100.0, 50.0), (None, 300.0, 100.0)]  # published / estimated: 2x and 3x
    first, second = Calibration.count_errors(pairs)
    assert first == pytest.approx(50.0 * 3 / 100.0 - 1)  # scaled by the other point's 3x
    assert second == pytest.approx(100.0 * 2 / 300.0 - 1)
    assert Calibration.count_errors(pairs[:1]) == []  # one point predicts nothing


def test_the_cli_prints_one_targets_points_with_their_errors(cli):
    result = cli("targets", "rk3566", "--calibration")
    assert result.status == 0, result.stderr
    out = result.stdout
    rows = [line.split()[0] for line in out.splitlines() if line.startswith(("rk", "rpi", "opi"))]
    roofline_rows = rows[:rows.index("rpi5-ort-yolov8n")] if "rpi5-ort-yolov8n" in rows else rows
    assert roofline_rows and all(r.startswith(("rk3566", "opi3b")) for r in roofline_rows)
    assert "these " in out and "all " in out and "leave-one-out" in out
