# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv from this repo's files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned in pyproject to the CPU wheel that lies on this machine's disk; never pull a CUDA build
PIP := $(BIN)/python -m pip

.PHONY: demo test test-fast venv system-deps aarch64-deps aarch64-env rknn-env olive-env llama-wheel llama-converter benchmark clean

# llama-cpp-python has no wheel on PyPI: it is built once, portable (AVX2/FMA/F16C, no -march=native:
# a native build on a host that advertises AMX died with SIGILL in generation), into a folder outside
# the checkout that later builds and CI runs reuse; pip then takes it from there.
LLAMA_VERSION := 0.3.36
LLAMA_WHEELS ?= $(HOME)/.cache/edgeopt/wheels

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Debian packages the tests use: Fashion-MNIST (an example's data), Chromium (report.html is rendered in it),
# openssh-server and -client (--device is tested against an sshd the tests start on loopback)
system-deps:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] || ! command -v chromium >/dev/null || [ ! -x /usr/sbin/sshd ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			dataset-fashion-mnist chromium openssh-server openssh-client) || \
		echo "warning: could not install Debian's dataset-fashion-mnist, chromium and openssh-server (tests need them)"; fi

# What figures for ARM boards need on this machine: qemu-user (the dynamic build: it loads plugins), mmdebstrap
# (the arm64 userland), glib headers and gcc (the instruction-counting TCG plugin), llvm-mca (core models).
aarch64-deps:
	@if ! command -v qemu-aarch64 >/dev/null || ! command -v mmdebstrap >/dev/null || ! pkg-config --exists glib-2.0 \
		|| ! { command -v llvm-mca >/dev/null || command -v llvm-mca-14 >/dev/null; }; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			qemu-user mmdebstrap libglib2.0-dev pkg-config gcc xz-utils llvm-14; fi

# the arm64 userland with ONNX Runtime / OpenVINO at this venv's versions, under ~/.cache/edgeopt/envs
aarch64-env: $(BIN)/python aarch64-deps
	$(BIN)/edgeopt env create aarch64

# Rockchip's rknn-toolkit2 (ONNX → .rknn, its NPU simulator) in a venv of its own under ~/.cache/edgeopt/envs: its
# pins (numpy 1.26, onnx 1.18, protobuf 4.25) cannot share .venv (~1 min and 1.5 GB, once)
rknn-env: $(BIN)/python
	$(BIN)/edgeopt env create rknn

# Microsoft's Olive (olive-ai) and the ONNX Runtime it runs on, in a venv of its own (~1.5 min, ~1.5 GB, once)
olive-env: $(BIN)/python
	$(BIN)/edgeopt env create olive

venv: $(BIN)/python

demo: $(BIN)/python
	$(PIP) install -q -e '.[onnx,hf,openvino,examples]'
	@# exit 1 is a verdict (no candidate passed every gate), not a broken demo; anything else fails it
	@$(BIN)/edgeopt build examples/minilm/manifest.yaml --target host; status=$$?; \
	if [ $$status -eq 1 ]; then echo "demo complete: the build ran; exit status 1 = no candidate passed every gate on this machine"; \
	elif [ $$status -ne 0 ]; then exit $$status; fi

llama-wheel: $(BIN)/python
	@ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || { \
		echo "building llama-cpp-python $(LLAMA_VERSION) from source (7-30 min, once)"; mkdir -p $(LLAMA_WHEELS) && \
		CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 $(PIP) wheel -q --no-deps --no-cache-dir \
			llama-cpp-python==$(LLAMA_VERSION) -w $(LLAMA_WHEELS); }

# llama.cpp's own HF → GGUF converter and its llama-imatrix / llama-quantize / llama-perplexity, from the source
# release of the installed llama-cpp-python (~30 s downloading its 76 MB; the tools build in ~3.5 min on 2 cores,
# portable flags, once); edgeopt's GGUF writer is used where the converter is not there
llama-converter: $(BIN)/python
	@if ! command -v cmake >/dev/null || ! command -v g++ >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			cmake g++ ninja-build; fi
	$(BIN)/edgeopt env create llama.cpp

test: $(BIN)/python system-deps llama-wheel
	$(PIP) install -q --find-links $(LLAMA_WHEELS) -e '.[onnx,hf,openvino,gguf,mlx,examples,examples-llm,ray,dev]'
	$(MAKE) aarch64-env llama-converter rknn-env olive-env
	EDGEOPT_REQUIRE_EMULATION=1 EDGEOPT_REQUIRE_TOOLS=1 $(BIN)/python -m pytest

# the quick loop: everything except the full example builds
test-fast: $(BIN)/python
	$(BIN)/python -m pytest -m "not slow"

benchmark: $(BIN)/python system-deps llama-wheel
	$(PIP) install -q --find-links $(LLAMA_WHEELS) -e '.[onnx,hf,openvino,gguf,mlx,examples,examples-llm]'
	$(MAKE) llama-converter
	$(BIN)/python benchmarks/run_examples.py

clean:
	rm -rf $(VENV) examples/*/out benchmarks/results
