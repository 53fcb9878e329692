# `make` builds everything and puts the programs at the repository root;
# `make test` also runs every test; `make train` runs the main job.
BUILD ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
PROGRAMS := train_rkv test_grad convert_checkpoint

.PHONY: all deps configure train test clean

all: configure
	cmake --build $(BUILD) -j $(JOBS)
	@for p in $(PROGRAMS); do cp -f $(BUILD)/$$p ./$$p; done

deps:
	@scripts/install_deps.sh

configure: deps
	@[ -f $(BUILD)/CMakeCache.txt ] || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

train: all
	./train_rkv

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) $(PROGRAMS)
