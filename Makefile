# shield-nitro front door. Every target bootstraps Debian packages first (idempotent).
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_GEN  := -G Ninja
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_RUNS ?= 3000

.PHONY: all build test test-release test-asan fuzz fuzz-smoke bench demo package bootstrap clean

all: build

bootstrap:
	@scripts/bootstrap

$(BUILD)/build.ninja: | bootstrap
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: bootstrap $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# All tests: the release build's suite, then the ASan+UBSan suite and a fuzz smoke run.
test: test-release test-asan

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

$(ASAN_BUILD)/build.ninja: | bootstrap
	CC=clang CXX=clang++ cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug \
	  -DSN_SANITIZE=ON -DSN_FUZZ=ON -DSN_BENCH=OFF

test-asan: bootstrap $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 900 -LE "slow|python"
	scripts/fuzz-run $(ASAN_BUILD) smoke $(FUZZ_SMOKE_RUNS)

fuzz: bootstrap $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target fuzzers
	scripts/fuzz-run $(ASAN_BUILD) time $(FUZZ_SECONDS)

bench: build
	scripts/bench-run $(BUILD)

# The demo builds only what it runs (the CLI, the enclave program, the example's plugins, model and
# C++ client): never the tests, which need ../shared/fixtures that users do not have.
DEMO_TARGETS ?= shield-nitro shield-nitro-enclave mlp_plugin score_plugin model_artifacts classify client-cpp

demo: bootstrap $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target $(DEMO_TARGETS)
	scripts/demo $(BUILD)

# The .deb and .rpm (CLI, enclave program, parent SDK): builds only what they install, into $(BUILD)/.
package: bootstrap $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target sn_install_targets
	cd $(BUILD) && cpack -G "DEB;RPM"
	@ls -l $(BUILD)/shield-nitro_*.deb $(BUILD)/shield-nitro-*.rpm

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
