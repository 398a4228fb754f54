import numpy as np

from edgeopt.measure.diagnosis import compare_layers


def test_layers_are_ranked_most_divergent_first_and_unmatched_ones_ignored():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 16)).astype(np.float32)
    reference = {"same": a, "noisy": a, "flipped": a, "only-in-reference": a}
    candidate = {"same": a, "noisy": a + rng.normal(scale=0.3, size=a.shape).astype(np.float32), "flipped": -a,
                 "only-in-candidate": a}
    result = compare_layers(reference, candidate)
    assert result["compared_layers"] == 3
    assert [row["layer"] for row in result["layers"]] == ["flipped", "noisy", "same"]
    assert result["layers"][0]["cosine"] < 0 and result["layers"][-1]["relative_error"] == 0


def test_nncf_reverted_layers_are_read_from_its_log():
    from edgeopt.frameworks.openvino.passes import reverted_operations

    log = ["Metric of quantized model: 0.97", "Reverted 1 operations to the floating-point precision: \n\tMatMul_1",
           "Reverted 1 operations to the floating-point precision: \n\tMatMul_2",
           "2 out of 2 were reverted back to the floating-point precision:\n\tMatMul_1\n\tMatMul_2",
           "Algorithm completed: achieved required accuracy drop 0.01 (relative)"]
    reverted, completion = reverted_operations(log)
    assert reverted == ["MatMul_1", "MatMul_2"] and completion.startswith("Algorithm completed")
