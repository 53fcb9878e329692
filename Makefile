# `make` builds everything and puts the programs at the repository root;
# `make test` also runs every test; `make train` runs the main job.
BUILD ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
PROGRAMS := train_rkv generate_rkv eval_rkv test_grad convert_checkpoint tokenize_text

.PHONY: all deps configure train gpu test nvcc-check gpu-check clean

all: configure
	cmake --build $(BUILD) -j $(JOBS)
	@for p in $(PROGRAMS); do cp -f $(BUILD)/$$p ./$$p; done

deps:
	@scripts/install_deps.sh

configure: deps
	@[ -f $(BUILD)/CMakeCache.txt ] || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

# The main job: on the GPU when there is one (an nvcc build in build-gpu/), else the CPU.
train: deps
	@if nvidia-smi -L > /dev/null 2>&1; then $(MAKE) --no-print-directory gpu && build-gpu/train_rkv --device cuda; \
	 else $(MAKE) --no-print-directory all && ./train_rkv; fi

# GPU_FLAGS adds CMake options, e.g. GPU_FLAGS=-DRKV_FP32=ON for fp32 storage. GPU_ARCH is this
# GPU's compute capability, 90a on Hopper (wgmma needs the arch-specific target).
GPU_ARCH ?= $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d . | sed 's/^90$$/90a/')
gpu: deps
	@[ -f build-gpu/CMakeCache.txt ] || cmake -S . -B build-gpu -DRKV_GPU=ON -DCMAKE_CUDA_ARCHITECTURES=$(or $(GPU_ARCH),native) \
	    -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(GPU_FLAGS)
	cmake --build build-gpu -j $(JOBS)

# Every .cu must stay valid CUDA: compiled by nvcc for sm_90a and sm_80 when it is there
# (nothing runs). ctest runs tests side by side, so BLAS gets one thread each.
test: all
	@if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then \
	    $(MAKE) --no-print-directory -j $(JOBS) nvcc-check; \
	 else echo "nvcc not found (no CUDA toolkit): skipping the CUDA compile check"; fi
	cd $(BUILD) && OPENBLAS_NUM_THREADS=1 ctest --output-on-failure -j $(JOBS)

# The nvcc check, incremental: an object per .cu under $(BUILD)/nvcc/, remade only when the
# source or a header it includes changed (nvcc -MMD), with the GPU build's warnings as errors
# (layers/CMakeLists.txt), host compiler's included. scripts/nvcc_check.sh runs it.
NVCC ?= $(shell command -v nvcc || echo /usr/local/cuda/bin/nvcc)
CU_SOURCES := $(shell find bench cuda layers optim tests/emu -name '*.cu' 2>/dev/null | sort)
NVCC_OBJECTS := $(CU_SOURCES:%.cu=$(BUILD)/nvcc/%.o)
nvcc-check: $(NVCC_OBJECTS)
	@echo "nvcc check: $(words $(NVCC_OBJECTS)) sources valid CUDA for sm_90a and sm_80"
$(BUILD)/nvcc/%.o: %.cu
	@mkdir -p $(@D)
	@$(NVCC) -std=c++20 -O2 -I. -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=sm_80 \
	    -Xcompiler=-Wall,-Wextra,-Wno-unused-parameter -Werror all-warnings -MMD -MP -c $< -o $@ && echo "ok   $<"
-include $(NVCC_OBJECTS:.o=.d)

# On a machine with a GPU: nvcc build, kernel tests on the GPU, benchmarks (scripts/gpu_check.sh).
gpu-check: deps
	scripts/gpu_check.sh

clean:
	rm -rf $(BUILD) build-gpu $(PROGRAMS)
