"""The GGUF quantizer's config: per-tensor types go to llama.cpp's own llama-quantize, each as one NAME=TYPE."""

import pytest
from pydantic import ValidationError

from edgeopt.frameworks.gguf.passes import Quantize, QuantizeConfig


def test_tensor_types_need_llama_cpps_tools_but_no_calibration_text():
    mixed = QuantizeConfig(type="IQ4_NL", tensor_types={"ffn_down": "Q8_0", r"blk\.0\.attn_v": "Q6_K"})
    assert mixed.uses_tools and Quantize.environments(mixed) == ("llama.cpp",)
    assert not Quantize.calibrates(mixed)  # only an importance matrix reads calibration text
    plain = QuantizeConfig(type="IQ4_NL")
    assert not plain.uses_tools and Quantize.environments(plain) == ()


@pytest.mark.parametrize("name", ["ffn down", "attn_v=q8_0", "", "blk.(0"])
def test_a_tensor_name_that_cannot_be_one_argument_or_pattern_is_refused(name):
    with pytest.raises(ValidationError, match="tensor_types"):
        QuantizeConfig(tensor_types={name: "Q8_0"})


def test_a_tensor_type_outside_ggmls_names_is_refused():
    with pytest.raises(ValidationError):
        QuantizeConfig(tensor_types={"ffn_down": "Q3"})
