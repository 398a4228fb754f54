"""The peers benchmarks' verdict on the issue's 1.2x bar: read from the rounds both variants were timed in, with
its interval, never from two medians taken apart (pure logic on synthetic rounds)."""

import numpy as np

from benchmarks.lead import head_to_head, lead


def test_a_lead_is_met_only_when_its_whole_interval_clears_the_bar():
    noise = np.random.default_rng(0).normal(0, 0.02, size=12)
    edgeopt = 5.0 + noise
    clear = lead(edgeopt, edgeopt * 1.4 + noise[::-1])
    assert clear["verdict"] == "met" and clear["interval_95"][0] >= 1.2 and clear["rounds"] == 12
    short = lead(edgeopt, edgeopt * 1.05)
    assert short["verdict"] == "not met" and short["interval_95"][1] < 1.2 and 1.04 < short["median"] < 1.06


def test_rounds_that_straddle_the_bar_cannot_tell():
    # half the rounds 1.1x, half 1.3x: the median is near the bar and its interval spans it
    edgeopt = np.full(12, 5.0)
    peer = edgeopt * np.array([1.1, 1.3] * 6)
    straddling = lead(edgeopt, peer)
    assert straddling["verdict"] == "cannot tell"
    assert straddling["interval_95"][0] < 1.2 <= straddling["interval_95"][1]
    assert lead([5.0], [7.0])["verdict"] == "cannot tell"  # one round has no interval


def test_head_to_head_pairs_the_fastest_eligible_of_each_origin_and_reads_their_rounds():
    results = {"peer-fast-inaccurate": {"origin": "peer", "speedup": 3.0, "cos": 0.9},
               "peer-accurate": {"origin": "peer", "speedup": 2.0, "cos": 0.99},
               "ours-slow": {"origin": "edgeopt", "speedup": 1.5, "cos": 0.99},
               "ours-fast": {"origin": "edgeopt", "speedup": 2.6, "cos": 0.99}}
    rounds = {"peer-accurate": [6.5] * 6, "ours-fast": [5.0] * 6,
              "ours-slow": [9.0] * 6, "peer-fast-inaccurate": [4.0] * 6}
    best = head_to_head(results, eligible=lambda f: f["cos"] >= 0.98, speedup=lambda f: f["speedup"],
                        rounds_of=rounds.__getitem__)
    assert best["peer"]["name"] == "peer-accurate" and best["edgeopt"]["name"] == "ours-fast"
    assert best["edgeopt_over_peer"] == 1.3 and best["lead"]["median"] == 1.3
    lonely = head_to_head({"ours-fast": results["ours-fast"]}, eligible=lambda f: True, speedup=lambda f: f["speedup"],
                          rounds_of=rounds.__getitem__)
    assert "lead" not in lonely and lonely["edgeopt"]["name"] == "ours-fast"  # no peer, nothing to lead
