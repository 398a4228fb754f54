"""The build cache's administration: info, LRU prune, clear, a size cap; a full disk; builds sharing a cache."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgeopt.artifact import ModelArtifact
from edgeopt.cache import USED, BuildCache, cache_info, cache_max_bytes, clear, format_size, parse_size, prune
from edgeopt.errors import CacheDiskFull, ExitStatus, UsageError

REPO = Path(__file__).resolve().parents[2]


def measurement(cache: BuildCache, key: str, size: int, tmp_path: Path) -> None:
    """An entry of about `size` bytes: a measurement with one output file."""
    source = tmp_path / f"src-{key}.npy"
    source.write_bytes(b"\1" * size)
    cache.put_measurement(key, {"p50_ms": 1.0}, {"outputs.npy": source})


def entry(root: Path, key: str, kind: str = "measurements") -> Path:
    return root / kind / key[:2] / key


def age(root: Path, key: str, seconds_ago: float) -> None:
    """Make an entry look written (and last used) `seconds_ago`."""
    when = time.time() - seconds_ago
    for name in ("entry.json", USED):
        path = entry(root, key) / name
        if path.exists():
            os.utime(path, (when, when))


def test_info_counts_entries_and_bytes_by_kind(tmp_path):
    root = tmp_path / "cache"
    cache = BuildCache(root)
    for key in ("aa11", "bb22"):
        measurement(cache, key, 1000, tmp_path)
    cache.put_pass_nothing_to_do("cc33", "nothing to fold")
    info = cache_info(root)
    assert info["entries"] == 3 and info["by_kind"]["measurements"]["entries"] == 2
    assert info["by_kind"]["passes"]["entries"] == 1
    assert 2000 < info["bytes"] < 2200 and info["bytes"] == sum(k["bytes"] for k in info["by_kind"].values())
    assert cache_info(tmp_path / "never-made")["entries"] == 0


def test_reading_an_entry_records_its_use(tmp_path):
    cache = BuildCache(tmp_path)
    measurement(cache, "aa11", 10, tmp_path)
    assert not (entry(tmp_path, "aa11") / USED).exists()
    assert cache.get_measurement("aa11") == {"p50_ms": 1.0}
    assert (entry(tmp_path, "aa11") / USED).exists()


def test_prune_evicts_the_least_recently_used_first(tmp_path):
    root = tmp_path / "cache"
    cache = BuildCache(root)
    for key, written in (("aa11", 300), ("bb22", 200), ("cc33", 100)):  # aa11 is the oldest write
        measurement(cache, key, 1000, tmp_path)
        age(root, key, written)
    assert cache.get_measurement("aa11")  # ... but the most recently read
    result = prune(root, 2100)
    assert result["removed"] == 1 and result["entries"] == 2 and result["bytes"] <= 2100
    assert entry(root, "aa11").exists() and not entry(root, "bb22").exists() and entry(root, "cc33").exists()
    assert prune(root, 10**9)["removed"] == 0


def test_clear_removes_every_entry_and_leftover(tmp_path):
    root = tmp_path / "cache"
    cache = BuildCache(root)
    measurement(cache, "aa11", 100, tmp_path)
    stale = root / "passes" / "ab" / ".staging-abcd-1234"
    stale.mkdir(parents=True)
    os.utime(stale, (0, 0))
    assert cache_info(root)["leftovers"] == 1
    result = clear(root)
    assert result["removed"] == 1 and cache_info(root) == {**cache_info(root), "entries": 0, "bytes": 0}
    assert root.is_dir() and not stale.exists()


def test_a_size_cap_is_applied_after_each_write_and_keeps_the_newest(tmp_path):
    root = tmp_path / "cache"
    cache = BuildCache(root, max_bytes=2500)
    for i, key in enumerate(("aa11", "bb22", "cc33", "dd44")):
        measurement(cache, key, 1000, tmp_path)
        age(root, key, 100 - i)
    assert cache_info(root)["bytes"] <= 2500
    assert [e.name for e in sorted((root / "measurements").glob("*/*"))] == ["cc33", "dd44"]
    tiny = BuildCache(tmp_path / "tiny", max_bytes=0)  # the entry just written stays, alone
    measurement(tiny, "ee55", 1000, tmp_path)
    assert cache_info(tmp_path / "tiny")["entries"] == 1


def test_the_cap_comes_from_edgeopt_cache_max_gb():
    assert cache_max_bytes({}) is None and cache_max_bytes({"EDGEOPT_CACHE_MAX_GB": " "}) is None
    assert cache_max_bytes({"EDGEOPT_CACHE_MAX_GB": "0.5"}) == 500_000_000
    for bad in ("five", "-1", "nan", "inf"):
        with pytest.raises(UsageError, match="EDGEOPT_CACHE_MAX_GB"):
            cache_max_bytes({"EDGEOPT_CACHE_MAX_GB": bad})


def test_sizes_parse_as_people_write_them():
    assert parse_size("5G") == 5 * 10**9 and parse_size("500MB") == 500 * 10**6 and parse_size("1.5GiB") == 1.5 * 2**30
    assert parse_size("0") == 0 and parse_size("2k") == 2000 and parse_size(" 3 t ") == 3 * 10**12
    for bad in ("", "-1G", "5X", "G", "1e9"):
        with pytest.raises(UsageError, match="not a size"):
            parse_size(bad)
    assert format_size(1_500_000_000) == "1.5 GB" and format_size(12) == "12 B"


def test_a_full_disk_leaves_no_entry_and_says_so(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    model = tmp_path / "made" / "model.onnx"
    model.parent.mkdir()
    model.write_bytes(b"\0" * 64)
    artifact = ModelArtifact(path=str(model), format="onnx", framework="onnxruntime")

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("edgeopt.cache.shutil.copy2", disk_full)
    with pytest.raises(CacheDiskFull) as caught:
        BuildCache(root).put_pass("ab" * 32, artifact, 1.0)
    message = str(caught.value)
    assert str(root) in message and "is full" in message and "--no-cache" in message
    assert caught.value.exit_status == ExitStatus.ENVIRONMENT  # the machine's state, not a bug
    assert list((root / "passes").rglob("*")) == [root / "passes" / "ab"]  # no entry, no staging folder
    assert BuildCache(root).get_pass("ab" * 32, tmp_path / "into") is None


def test_a_full_disk_while_copying_a_model_folder(tmp_path, monkeypatch):
    folder = tmp_path / "made" / "model_hf"
    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes(b"\0" * 64)
    artifact = ModelArtifact(path=str(folder), format="hf", framework="hf")

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("shutil.copyfile", disk_full)  # copytree gathers it into a shutil.Error
    with pytest.raises(CacheDiskFull, match="is full"):
        BuildCache(tmp_path / "cache").put_pass("12" * 32, artifact, 1.0)
    assert cache_info(tmp_path / "cache")["entries"] == 0 and not list((tmp_path / "cache").rglob(".staging-*"))


def test_a_full_disk_while_writing_entry_json_too(tmp_path, monkeypatch):
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name == "entry.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(CacheDiskFull):
        BuildCache(tmp_path).put_measurement("cd" * 32, {"p50_ms": 1.0})
    assert cache_info(tmp_path)["entries"] == 0 and not list(tmp_path.rglob(".staging-*"))


def test_an_entry_evicted_while_being_read_is_a_miss(tmp_path, monkeypatch):
    from edgeopt import cache as cache_module

    model = tmp_path / "made" / "model.onnx"
    model.parent.mkdir()
    model.write_bytes(b"\0" * 64)
    cache = BuildCache(tmp_path / "cache")
    cache.put_pass("ef" * 32, ModelArtifact(path=str(model), format="onnx", framework="onnxruntime"), 1.0)
    real_copytree = shutil.copytree

    def evicted_first(source, *args, **kwargs):
        cache_module._evict(Path(source).parent)  # a concurrent prune renames the entry away
        return real_copytree(source, *args, **kwargs)

    monkeypatch.setattr("edgeopt.cache.shutil.copytree", evicted_first)
    assert cache.get_pass("ef" * 32, tmp_path / "into") is None
    assert not (tmp_path / "into").exists() and cache.misses["pass"] == 1


def test_a_concurrent_build_renaming_the_same_entry_first_is_not_an_error(tmp_path, monkeypatch):
    real_replace = os.replace
    root = tmp_path / "cache"

    def other_build_won(source, destination):
        if ".staging-" in str(source):  # the other build's copy lands between our check and our rename
            Path(destination).mkdir(parents=True)
            (Path(destination) / "entry.json").write_text(json.dumps({"p50_ms": 1.0}))
        return real_replace(source, destination)

    monkeypatch.setattr("edgeopt.cache.os.replace", other_build_won)
    BuildCache(root).put_measurement("0a" * 32, {"p50_ms": 1.0})
    assert BuildCache(root).get_measurement("0a" * 32) == {"p50_ms": 1.0}
    assert not list(root.rglob(".staging-*"))


WORKER = r"""
import json, sys
from pathlib import Path
from edgeopt.artifact import ModelArtifact
from edgeopt.cache import BuildCache

root, scratch, name, rounds = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
cache = BuildCache(root)
hits = 0
for round_ in range(rounds):
    for k in range(6):
        key = f"{k:02d}" * 32
        payload = bytes([k]) * (50_000 + k)  # what this key holds, whoever wrote it
        made = scratch / name / f"made-{round_}-{k}"
        made.mkdir(parents=True)
        (made / "model.xml").write_bytes(payload)
        (made / "model.bin").write_bytes(payload[::-1] + b"end")
        artifact = ModelArtifact(path=str(made / "model.xml"), files=("model.bin",), format="openvino-ir",
                                 framework="openvino")
        got = cache.get_pass(key, scratch / name / f"into-{round_}-{k}")
        if got is not None:
            restored, seconds = got
            assert seconds == k, seconds
            xml, bin_ = Path(restored.path), Path(restored.path).with_suffix(".bin")
            assert xml.read_bytes() == payload and bin_.read_bytes() == payload[::-1] + b"end", "half an entry"
            hits += 1
        if got is None or round_ % 2:  # odd rounds write again: both builds commit the same keys at once
            cache.put_pass(key, artifact, float(k))
        cache.put_measurement(key, {"k": k, "pad": "x" * 1000})
        result = cache.get_measurement(key)
        assert result is None or result == {"k": k, "pad": "x" * 1000}, "half a measurement"
print(json.dumps({"hits": hits}))
"""


def test_two_builds_sharing_a_cache_never_read_half_an_entry_and_both_finish(tmp_path):
    root, scratch = tmp_path / "cache", tmp_path / "scratch"
    rounds = 15
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    builds = [subprocess.Popen([sys.executable, "-c", WORKER, str(root), str(scratch), name, str(rounds)], cwd=REPO,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for name in ("one", "two")]
    stop = threading.Event()

    def pruner():  # a third party evicting meanwhile: readers must see a whole entry or a miss
        while not stop.is_set():
            prune(root, 400_000)
            time.sleep(0.005)

    thread = threading.Thread(target=pruner)
    thread.start()
    try:
        outputs = [build.communicate(timeout=120) for build in builds]
    finally:
        stop.set()
        thread.join()
    for build, (out, err) in zip(builds, outputs):
        assert build.returncode == 0, err[-2000:]
        assert json.loads(out)["hits"] > 0
    assert not list(root.rglob(".staging-*")) and not list(root.rglob(".trash-*"))


def test_threads_writing_and_reading_the_same_keys(tmp_path):
    root = tmp_path / "cache"
    errors = []

    def work(name):
        try:
            cache = BuildCache(root)
            for i in range(200):
                key = f"{i % 5:02d}" * 32
                cache.put_measurement(key, {"i": i % 5})
                assert cache.get_measurement(key) == {"i": i % 5}
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"{name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and cache_info(root)["entries"] == 5
