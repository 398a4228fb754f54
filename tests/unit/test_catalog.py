import re
from pathlib import Path

import pytest

from edgeopt.catalog import host_target, load_catalog
from edgeopt.errors import UnknownTarget
from edgeopt.hostinfo import HostFacts, detect_host

REQUIRED = ["rk3566", "rk3588", "rpi4", "rpi5", "jetson-orin-nano", "intel-n100", "intel-core-ultra", "apple-m1",
            "apple-m2", "snapdragon-8-gen2", "x86-64", "host"]


def test_catalog_covers_the_required_devices():
    catalog = load_catalog(host=detect_host())
    for name in REQUIRED:
        assert catalog.resolve(name).id


def test_every_figure_block_names_a_source_that_the_file_defines():
    for target in load_catalog().targets:
        blocks = [target.cpu, target.memory, *( [target.peak] if target.peak else []), *target.accelerators]
        for block in blocks:
            cited = re.findall(r"\bS\d+[a-z]?\b", block.source)
            assert cited, f"{target.id}: {type(block).__name__} cites no source id"
            for source_id in cited:
                assert source_id in target.sources, f"{target.id}: {source_id} is cited but not listed"


def test_unknown_target_lists_closest_ids():
    with pytest.raises(UnknownTarget) as caught:
        load_catalog().resolve("rk3568")
    assert "rk3566" in caught.value.closest or "rk3588" in caught.value.closest


def test_aliases_resolve_case_insensitively():
    assert load_catalog().resolve("OrangePi5").id == "rk3588-orangepi5"


def test_host_target_follows_detected_facts():
    x86 = host_target(HostFacts("x86_64", "intel", "Test CPU", 8, ("avx2",), 16.0))
    assert x86.detected and x86.cores == 8 and x86.frameworks.chain[0] == "openvino"
    arm = host_target(HostFacts("aarch64", "arm", "Cortex", 4, ("asimd",), 4.0))
    assert arm.arch == "aarch64" and "gguf" in arm.frameworks.chain and "openvino" not in arm.frameworks.chain


def test_detect_host_reads_cpuinfo_files(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx avx2 fma\n")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       25165824 kB\n")
    facts = detect_host(cpuinfo, meminfo)
    assert facts.vendor == "amd" and facts.cpu_model == "AMD EPYC"
    assert facts.isa == ("sse4_2", "avx", "avx2", "fma")
    assert facts.ram_gb == 24.0
