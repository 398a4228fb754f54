import numpy as np
import pytest

from edgeopt.measure import metrics
from edgeopt.measure.rounds import latency
from edgeopt.protocol import WindowResult


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
    result = metrics.metric("fidelity").evaluate({"name": "fidelity"}, np.ones((3, 4)), None, None)
    assert result["reference"] is True and result["score"] == 1.0


def test_cer_and_edit_distance():
    assert metrics._edit_distance("kitten", "sitting") == 3
    result = metrics.cer(["helo", "world"], ["hello", "world"])
    assert result["score"] == pytest.approx(1 / 10) and result["exact_match"] == 0.5


def test_mae():
    assert metrics.mae(np.array([[1.0], [3.0]]), np.array([2.0, 2.0]))["score"] == 1.0


def test_label_metrics_need_labels():
    with pytest.raises(ValueError, match="needs labels"):
        metrics.metric("top1").evaluate({"name": "top1"}, np.ones((2, 2)), None, None)


def test_latency_pools_every_window_of_every_round():
    windows = [WindowResult(samples_ms=tuple(float(i) for i in range(start, start + 50)), wall_s=1, cpu_s=1)
               for start in (1, 51)]
    pooled = latency(windows)
    assert pooled.p50 == pytest.approx(50.5) and pooled.p99 == pytest.approx(99.01) and pooled.runs == 100


def test_what_a_metric_needs_is_asked_of_the_registry():
    assert metrics.metric("fidelity").needs_reference and not metrics.metric("top1").needs_reference
    assert metrics.metric("cer").needs_decode and not metrics.metric("cer").higher_is_better
    assert metrics.metric("perplexity").computed_by_runtime and metrics.metric("perplexity").tasks == ("causal-lm",)
    assert metrics.metric("mae").retained(0.5, 0.25) == 0.5 and metrics.metric("top1").retained(0.45, 0.9) == 0.5
