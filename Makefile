# Pagoda build. `make` builds build/pagoda and build/libpagoda.a; `make test` runs the test suite;
# `make test-asan` runs it again under AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Baseline ISA is x86-64-v3 (AVX2, FMA, F16C). Files named *_avx512.c are compiled for AVX-512
# (with VNNI and BF16) and only called after a run-time CPU check (src/core/cpu.h).
CC       ?= cc
BUILD    ?= build
OPT      ?= -O2
SAN      ?=
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -g $(OPT) $(SAN) \
              -march=x86-64-v3 -Iinclude -Isrc -pthread
AVX512_FLAGS = -march=x86-64-v4 -mavx512vnni -mavx512bf16 -mavx512vbmi
LIBS     = -lpcre2-8 -lutf8proc -ljansson -lxxhash -lmicrohttpd -lcurl -lm -pthread

LIB_SRCS  := $(shell find src -name '*.c' ! -path 'src/cli/*' | sort)
CLI_SRCS  := $(shell find src/cli -name '*.c' | sort)
TEST_SRCS := $(shell find tests -maxdepth 1 -name 'test_*.c' | sort)
TEST_HELPERS := $(shell find tests -maxdepth 1 -name 'testlib*.c' | sort)

LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
CLI_OBJS  := $(CLI_SRCS:%.c=$(BUILD)/%.o)
TEST_HELPER_OBJS := $(TEST_HELPERS:%.c=$(BUILD)/%.o)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)

BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))

.PHONY: all test test-asan clean fuzz bench
all: $(BUILD)/pagoda

$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(AVX512_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -MMD -MP -c $< -o $@

$(BUILD)/libpagoda.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/pagoda: $(CLI_OBJS) $(BUILD)/libpagoda.a
	$(CC) $(CFLAGS_BASE) -o $@ $(CLI_OBJS) $(BUILD)/libpagoda.a $(LIBS)

$(BUILD)/tests/%: tests/%.c $(TEST_HELPER_OBJS) $(BUILD)/libpagoda.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -Itests -MMD -MP -o $@ $< $(TEST_HELPER_OBJS) $(BUILD)/libpagoda.a $(LIBS)

# Benchmark programs (not tests): build/bench/bench_*.
bench: $(BENCH_BINS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libpagoda.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -o $@ $< $(BUILD)/libpagoda.a $(LIBS)

# Runs every tests/test_* binary plus the CLI tests; prints "N passed, N failed".
test: $(BUILD)/pagoda $(TEST_BINS)
	BUILD=$(BUILD) ./tests/run_tests.sh

test-asan:
	$(MAKE) test BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"

# libFuzzer targets (clang). `make fuzz` builds them; run e.g. build-fuzz/fuzz_gguf -max_total_time=60
fuzz:
	$(MAKE) CC=clang BUILD=build-fuzz OPT=-O1 SAN="-fsanitize=fuzzer-no-link,address,undefined" build-fuzz/libpagoda.a
	@mkdir -p build-fuzz/fuzz
	for f in fuzz/fuzz_*.c; do clang -std=c11 -D_GNU_SOURCE -g -O1 -march=x86-64-v3 -Iinclude -Isrc \
	  -fsanitize=fuzzer,address,undefined $$f build-fuzz/libpagoda.a $(LIBS) -o build-fuzz/fuzz/$$(basename $$f .c) || exit 1; done

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(TEST_BINS:=.d)

# ---------------------------------------------------------------------------------------------
# CUDA section (issue 6): src/backend/cuda/*.cu -> build-cuda/libpagoda_cuda.so (C ABI, used by
# dev/cuda/*.py through ctypes) and the dev/cuda/*.cu programs. Built only when nvcc is found;
# without it every target below prints a notice and succeeds, so CPU-only machines are unaffected.
# `make cuda` compiles everything (what CI runs); `make test-cuda` runs the GPU checks on a GPU machine.
NVCC        ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_BUILD  ?= build-cuda
CUDA_ARCH   ?= -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=sm_80
NVCC_FLAGS   = -std=c++17 -O3 -Iinclude -Isrc $(CUDA_ARCH) -Xcompiler -fPIC,-Wall,-Wextra,-Wno-unused-parameter
CUDA_SRCS   := $(wildcard src/backend/cuda/*.cu)
CUDA_HDRS   := $(wildcard src/backend/cuda/*.h src/backend/cuda/*.cuh)
CUDA_OBJS   := $(CUDA_SRCS:%.cu=$(CUDA_BUILD)/%.o)
CUDA_DEV    := $(patsubst dev/cuda/%.cu,$(CUDA_BUILD)/dev/%,$(wildcard dev/cuda/*.cu))

.PHONY: cuda test-cuda bench-cuda
ifneq ($(NVCC),)
cuda: $(CUDA_BUILD)/libpagoda_cuda.so $(CUDA_DEV)

$(CUDA_BUILD)/%.o: %.cu $(CUDA_HDRS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

$(CUDA_BUILD)/src/core/error.o: src/core/error.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -fPIC -c $< -o $@

$(CUDA_BUILD)/libpagoda_cuda.so: $(CUDA_OBJS) $(CUDA_BUILD)/src/core/error.o
	$(NVCC) $(CUDA_ARCH) -shared -o $@ $^ -lcudart

# A dev program #includes the src/backend/cuda/*.cu it develops (so the two cannot drift apart).
$(CUDA_BUILD)/dev/%: dev/cuda/%.cu $(wildcard dev/cuda/*.cuh) $(CUDA_SRCS) $(CUDA_HDRS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -o $@ $<
else
cuda:
	@echo "nvcc not found: skipping the CUDA backend"
endif

test-cuda:
	./scripts/test_cuda.sh

bench-cuda: cuda
	python3 dev/cuda/bench_attention.py
