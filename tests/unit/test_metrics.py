import numpy as np
import pytest

from edgeopt.measure import metrics
from edgeopt.measure.stats import latency_summary


def test_top1_counts_argmax_matches():
    outputs = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert metrics.top1(outputs, np.array([1, 0, 0]))["score"] == pytest.approx(2 / 3)


def test_fidelity_of_identical_outputs_is_one_and_drops_with_noise():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(20, 16))
    same = metrics.fidelity(ref.copy(), ref)
    assert same["cosine_mean"] == pytest.approx(1.0) and same["max_abs_error"] == 0.0
    assert same["neighbour_overlap_at_5"] == 1.0
    noisy = metrics.fidelity(ref + rng.normal(scale=0.5, size=ref.shape), ref)
    assert noisy["cosine_mean"] < 0.99 and noisy["max_abs_error"] > 0.1


def test_the_baseline_is_its_own_reference_and_says_so():
    result = metrics.compute({"name": "fidelity"}, np.ones((3, 4)), None, None)
    assert result["reference"] is True and result["score"] == 1.0


def test_cer_and_edit_distance():
    assert metrics._edit_distance("kitten", "sitting") == 3
    result = metrics.cer(["helo", "world"], ["hello", "world"])
    assert result["score"] == pytest.approx(1 / 10) and result["exact_match"] == 0.5


def test_mae():
    assert metrics.mae(np.array([[1.0], [3.0]]), np.array([2.0, 2.0]))["score"] == 1.0


def test_label_metrics_need_labels():
    with pytest.raises(ValueError, match="needs labels"):
        metrics.compute({"name": "top1"}, np.ones((2, 2)), None, None)


def test_latency_summary_percentiles():
    summary = latency_summary([0.001 * i for i in range(1, 101)], batch_size=4)
    assert summary["latency_ms"]["p50"] == pytest.approx(50.5)
    assert summary["latency_ms"]["p99"] == pytest.approx(99.01)
    assert summary["latency_ms"]["runs"] == 100
    assert summary["throughput_per_s"] == pytest.approx(4 * 1000 / 50.5)
