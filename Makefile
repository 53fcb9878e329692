# `make` builds everything and puts the programs at the repository root;
# `make test` also runs every test; `make train` runs the main job.
BUILD ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
PROGRAMS := train_rkv test_grad convert_checkpoint

.PHONY: all deps configure train test gpu-check clean

all: configure
	cmake --build $(BUILD) -j $(JOBS)
	@for p in $(PROGRAMS); do cp -f $(BUILD)/$$p ./$$p; done

deps:
	@scripts/install_deps.sh

configure: deps
	@[ -f $(BUILD)/CMakeCache.txt ] || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

train: all
	./train_rkv

# Every .cu must stay valid CUDA: compiled by nvcc for sm_90a and sm_80 when it is there
# (nothing runs). ctest runs tests side by side, so BLAS gets one thread each.
test: all
	@if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then scripts/nvcc_check.sh -j $(JOBS); \
	 else echo "nvcc not found: skipping the CUDA compile check"; fi
	cd $(BUILD) && OPENBLAS_NUM_THREADS=1 ctest --output-on-failure -j $(JOBS)

# On a machine with a GPU: nvcc build, kernel tests on the GPU, benchmarks (scripts/gpu_check.sh).
gpu-check: deps
	scripts/gpu_check.sh

clean:
	rm -rf $(BUILD) $(PROGRAMS)
