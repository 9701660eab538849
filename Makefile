# Development driver. Installs go through the rockspec (luarocks make);
# this file reads its C sources from there so the two never disagree.

# The scm rockspec lists the sources; the versioned one (what rockcheck
# installs and packs) must match it apart from version and source.
SCM_ROCKSPEC := rockspec/memprobe-scm-1.rockspec
ROCKSPEC := rockspec/memprobe-0.1.0-1.rockspec
SRCS     := $(shell grep -o '"csrc/[a-z0-9_]*\.c"' $(SCM_ROCKSPEC) | tr -d '"')
HDRS     := $(wildcard csrc/*.h)
RUNTIMES := 5.1 5.2 5.3 5.4 jit

# Lua 5.5 (not packaged by Debian 12) is built from its source tarball into
# build/lua5.5 (tools/lua55.sh); busted's tarballs are taken from the same
# folder. Without the tarball the 5.5 parts are skipped with one line.
LUA55_SRC ?= $(CURDIR)/../shared/vendor/lua-5.5.0.tar.gz
LUA55_DIR := $(CURDIR)/build/lua5.5
ifneq ($(wildcard $(LUA55_SRC)),)
RUNTIMES += 5.5
LUA55_SKIP :=
else
LUA55_SKIP := lua55-skip
endif

# The interpreter and headers of each runtime.
LUA_5.1 := lua5.1
LUA_5.2 := lua5.2
LUA_5.3 := lua5.3
LUA_5.4 := lua5.4
LUA_jit := luajit
LUA_5.5 := $(LUA55_DIR)/bin/lua5.5
INC_5.1 := /usr/include/lua5.1
INC_5.2 := /usr/include/lua5.2
INC_5.3 := /usr/include/lua5.3
INC_5.4 := /usr/include/lua5.4
INC_jit := /usr/include/luajit-2.1
INC_5.5 := $(LUA55_DIR)/include
PKG_5.1 := lua5.1
PKG_5.2 := lua5.2
PKG_5.3 := lua5.3
PKG_5.4 := lua5.4
PKG_jit := luajit
# What a runtime needs before C is compiled against it, the busted runner
# for it, and how a C host links it (default: pkg-config of PKG_<rt>).
DEP_5.5 := $(LUA_5.5)
BUSTED  := /usr/bin/busted
BUSTED_5.5 := $(LUA55_DIR)/bin/busted
HOSTINC_5.5 := -I$(INC_5.5)
HOSTLIB_5.5 := $(LUA55_DIR)/lib/liblua.a -lm -ldl -Wl,-E
busted_of = $(or $(BUSTED_$(1)),$(BUSTED))

CC      ?= cc
OPT     ?= -O2 -g
# LPeg's warning set; the build must stay silent under it.
WARN    := -std=c99 -Wall -Wextra -pedantic -Wshadow -Wcast-qual \
           -Wmissing-prototypes -Wstrict-prototypes \
           -Wdeclaration-after-statement -Werror
CFLAGS  += $(OPT) $(WARN) -fPIC -fvisibility=hidden
LDFLAGS += -shared

# Debian packages: what `make demo` needs, and what every other target
# needs (golang-go and chromium: the profiler's pprof and flame graph
# specs read its files with `go tool pprof` and headless Chromium). Each target that builds or runs something waits for `deps` (an
# order-only prerequisite, so `make -j2` never builds before it): as root
# it installs what is missing; otherwise it lists it and goes on.
PKGS_DEMO := gcc make lua5.4 liblua5.4-dev procps
# node and npm for memlab (spec/26): Debian's, unless the machine has
# them already (a nodejs from elsewhere conflicts with Debian's npm)
PKGS_NODE := $(if $(shell command -v npm 2>/dev/null),,nodejs npm)
PKGS := $(PKGS_DEMO) lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 \
        liblua5.3-dev luajit2 libluajit2-5.1-dev \
        luarocks lua-busted lua-check lua-ldoc lua-cjson lua-dkjson \
        lua-socket python3-psutil \
        prometheus nginx-light libnginx-mod-http-lua curl \
        valgrind pkg-config \
        clang-14 libclang-rt-14-dev util-linux \
        golang-go chromium $(PKGS_NODE)
DEPS_GOALS := $(or $(MAKECMDGOALS),all)
DEPS_PKGS  := $(if $(filter-out demo,$(DEPS_GOALS)),$(PKGS),$(PKGS_DEMO))

LUA_PATH_DEV := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;
run = LUA_PATH='$(LUA_PATH_DEV)' LUA_CPATH='$(CURDIR)/build/$(1)/?.so;;'

.PHONY: all deps build test demo lint busted rockcheck docs clean check-targets \
        $(addprefix busted-,$(RUNTIMES)) embed tsan bench-tracker skynet

all: build

deps:
	@sh tools/deps.sh $(if $(filter deps,$(DEPS_GOALS)),,-w) $(DEPS_PKGS)
	@$(if $(filter $(MEMLAB_GOALS),$(DEPS_GOALS)),$(MAKE) --no-print-directory memlab)

# memlab, test-only: spec/26 loads the exported .heapsnapshot files with
# it (tools/memlab/check.js). Installed from tools/memlab's lockfile into
# build/memlab, without install scripts (no browser download).
# (for the goals that run specs only: other targets build without it).
MEMLAB := build/memlab/.installed
MEMLAB_GOALS := test busted $(addprefix busted-,$(RUNTIMES)) asan asan-quick valgrind
.PHONY: memlab
memlab: $(MEMLAB)
$(MEMLAB): tools/memlab/package.json tools/memlab/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  echo "== installing memlab into build/memlab (test-only)"; \
	  mkdir -p $(@D) && cp tools/memlab/package.json tools/memlab/package-lock.json $(@D)/ && \
	  cd $(@D) && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --ignore-scripts --no-audit \
	    --no-fund --loglevel=error >/dev/null && touch .installed; \
	else echo "npm is missing: spec/26 skips its memlab checks"; fi

build: $(LUA55_SKIP) $(foreach r,$(RUNTIMES),build/$(r)/memprobe/core.so)

.PHONY: lua55-skip
lua55-skip:
	@echo "SKIPPED (no Lua 5.5 source: set LUA55_SRC)"

$(LUA55_DIR)/bin/lua5.5: tools/lua55.sh $(LUA55_SRC) | deps
	@echo "== building Lua 5.5 and busted for it into build/lua5.5"
	@sh tools/lua55.sh $(LUA55_SRC) $(LUA55_DIR)

define build_rule
build/$(1)/memprobe/core.so: $(SRCS) $(HDRS) $(SCM_ROCKSPEC) Makefile $(DEP_$(1)) | deps
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) -I$(INC_$(1)) -Icsrc $$(SRCS) -o $$@ $$(LDFLAGS)
endef
$(foreach r,$(RUNTIMES),$(eval $(call build_rule,$(r))))

lint: | deps
	luacheck -q $(wildcard lua bin/memprobe spec examples bench)

busted: build testalloc skynet
	@sh tools/busted-all.sh $(foreach r,$(RUNTIMES),$(r)=$(LUA_$(r))=$(call busted_of,$(r)))

$(addprefix busted-,$(RUNTIMES)): busted-%: build/%/memprobe/core.so \
                                   build/%/memprobe_testalloc.so
	@echo "== busted on $(LUA_$*)"
	@$(call run,$*) $(LUA_$*) $(call busted_of,$*) -o utfTerminal

# Each target a contributor may run, once from a fresh clone (long: CI).
check-targets:
	@sh tools/check-targets.sh

rockcheck: | deps
	@sh tools/rockcheck.sh $(ROCKSPEC)

# The embedding example: two tracked states in two threads, linked
# against the system's Lua 5.4; once plain, once under ThreadSanitizer.
EMBED_CFLAGS := $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I$(INC_5.4))
EMBED_LIBS   := $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)
EMBED_SRCS   := examples/embed/host.c $(SRCS)

build/embed/host: $(EMBED_SRCS) $(HDRS) Makefile | deps
	@mkdir -p $(@D)
	$(CC) $(OPT) $(WARN) -pthread $(EMBED_CFLAGS) -Icsrc $(EMBED_SRCS) -o $@ $(EMBED_LIBS)

build/tsan/host: $(EMBED_SRCS) $(HDRS) Makefile | deps
	@mkdir -p $(@D)
	$(CC) -O1 -g -fsanitize=thread $(WARN) -pthread $(EMBED_CFLAGS) -Icsrc \
	  $(EMBED_SRCS) -o $@ $(EMBED_LIBS)

embed: build/embed/host
	./build/embed/host

tsan: build/tsan/host
	TSAN_OPTIONS=halt_on_error=1 ./build/tsan/host

# Callgrind instruction counts with and without the allocator hook, with
# longer loops than the tracker rows of make bench.
bench-tracker: build/5.4/memprobe/core.so build/jit/memprobe/core.so
	@sh bench/tracker.sh

# The heap walk at scale: 1M and 10M objects (10M is about 1 GB per
# interpreter), 5.4 and LuaJIT, cold and warm, one interpreter at a time.
BENCH_SCALE_SIZES ?= 1000000 10000000
bench-scale: build/5.4/memprobe/core.so build/jit/memprobe/core.so
	@for n in $(BENCH_SCALE_SIZES); do \
	  $(call run,5.4) nice lua5.4 bench/heap_scale.lua $$n || exit 1; echo; \
	  $(call run,jit) nice luajit bench/heap_scale.lua $$n || exit 1; echo; \
	  $(call run,5.4) nice lua5.4 bench/heapsnapshot_scale.lua $$n || exit 1; echo; \
	  $(call run,jit) nice luajit bench/heapsnapshot_scale.lua $$n || exit 1; echo; \
	done
	@$(call run,5.4) nice lua5.4 bench/heap_roots.lua && echo && \
	  $(call run,jit) nice luajit bench/heap_roots.lua

# skynet from its release tarball, without jemalloc, and memprobe.core
# against its 3rd/lua headers: the skynet binary exports its Lua (-Wl,-E),
# so the module links no liblua. spec/22-skynet_spec.lua drives the node.
SKYNET_SRC ?= $(CURDIR)/../shared/vendor/skynet-f19d1605.tar.gz
SKYNET_DIR := build/skynet
SKYNET_CORE := build/skynet-core/memprobe/core.so

ifneq ($(wildcard $(SKYNET_SRC)),)
skynet: $(SKYNET_DIR)/skynet $(SKYNET_CORE)

$(SKYNET_DIR)/skynet: $(SKYNET_SRC) | deps
	@rm -rf $(SKYNET_DIR) && mkdir -p $(SKYNET_DIR)
	@tar -xzf $(SKYNET_SRC) -C $(SKYNET_DIR) --strip-components=1
	@echo "== skynet from $(notdir $(SKYNET_SRC)) (log in $(SKYNET_DIR).log)"
	@$(MAKE) -C $(SKYNET_DIR) linux MALLOC_STATICLIB= \
	  SKYNET_DEFINES=-DNOUSE_JEMALLOC >$(SKYNET_DIR).log 2>&1 || \
	  { tail -n 20 $(SKYNET_DIR).log; exit 1; }

$(SKYNET_CORE): $(SRCS) $(HDRS) $(SCM_ROCKSPEC) Makefile $(SKYNET_DIR)/skynet
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -I$(SKYNET_DIR)/3rd/lua -Icsrc $(SRCS) -o $@ $(LDFLAGS)
else
skynet:
	@echo "SKIPPED (no skynet source: set SKYNET_SRC)"
endif

demo: build/5.4/memprobe/core.so
	@$(call run,5.4) lua5.4 bin/memprobe report

docs: build docs/ldoc/types.lua docs/ldoc/commands.lua
	@rm -rf build/docsrc && mkdir -p build/docsrc
	@ln -s $(CURDIR)/lua/memprobe/*.lua $(CURDIR)/csrc/*.c build/docsrc/
	@# LDoc reads files in name order and a C file's @submodule needs the
	@# module seen first: init.lua (@module memprobe) must sort first.
	@mv build/docsrc/init.lua build/docsrc/_init.lua
	@# The methods of C objects and the console's commands (doc-only files,
	@# read after the modules they extend).
	@ln -s $(CURDIR)/docs/ldoc/types.lua build/docsrc/zz_types.lua
	@ln -s $(CURDIR)/docs/ldoc/commands.lua build/docsrc/zz_commands.lua
	@ldoc -q . >/dev/null
	@$(call run,5.4) lua5.4 tools/doccheck.lua build/docs

# Also what a `luarocks make` in the checkout leaves behind.
clean:
	rm -rf build memprobe csrc/*.o *.rock

# ---------------------------------------------------------------------
# Hardening: fault injection, sanitizers, valgrind, fuzzing, benchmarks.
# Every fuzz/fuzz_*.c is a libFuzzer target; every bench/*_bench.lua a
# benchmark; adding a file is enough.

CLANG        ?= clang-14
SAN          := -fsanitize=address,undefined -fno-sanitize-recover=all \
                -fno-omit-frame-pointer
ASAN_RT       = $(shell $(CLANG) -print-file-name=libclang_rt.asan-x86_64.so)
ASAN_RUNTIMES := 5.4 jit $(filter 5.5,$(RUNTIMES))
FUZZ_SECONDS ?= 60
FUZZ_SMOKE   ?= 3
FUZZ_BINS    := $(patsubst fuzz/%.c,build/fuzz/%,$(wildcard fuzz/fuzz_*.c))
# The aggressive-GC pass: a collection step at every allocation.
GC_AGGRESSIVE := collectgarbage("setpause", 0)
GC_AGGRESSIVE_5.5 := collectgarbage("param", "pause", 0)
gc_aggressive = $(or $(GC_AGGRESSIVE_$(1)),$(GC_AGGRESSIVE))
ASAN_ENV = ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=0 \
           UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
           LD_PRELOAD=$(ASAN_RT) MEMPROBE_ASAN_PRELOAD=$(ASAN_RT)
VALGRIND := valgrind -q --error-exitcode=1 --leak-check=full \
            --errors-for-leak-kinds=definite --show-leak-kinds=definite

.PHONY: bench-scale testalloc asan asan-quick valgrind fuzz fuzz-smoke fuzz-build bench

# The specs' own C: the failing allocator of the fault-injection spec, a
# host that makes an unprotected call under a limit and one that reads its
# allocator ud back. Never in the rockspec.
testalloc: $(LUA55_SKIP) $(foreach r,$(RUNTIMES),build/$(r)/memprobe_testalloc.so \
                                   build/$(r)/panic_host build/$(r)/ud_host)

define harden_rule
build/$(1)/memprobe_testalloc.so: spec/c/testalloc.c Makefile $(DEP_$(1)) | deps
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) -I$(INC_$(1)) $$< -o $$@ $$(LDFLAGS) -ldl
build/$(1)/panic_host build/$(1)/ud_host: build/$(1)/%: spec/c/%.c Makefile $(DEP_$(1)) | deps
	@mkdir -p $$(@D)
	$$(CC) $$(OPT) $$(WARN) \
	  $(or $(HOSTINC_$(1)),$$$$(pkg-config --cflags $(PKG_$(1)))) $$< -o $$@ \
	  $(or $(HOSTLIB_$(1)),$$$$(pkg-config --libs $(PKG_$(1))))
build/asan-$(1)/memprobe/core.so: $(SRCS) $(HDRS) $(SCM_ROCKSPEC) Makefile $(DEP_$(1)) | deps
	@mkdir -p $$(@D)
	$$(CLANG) -O1 -g $$(WARN) -fPIC $$(SAN) -shared-libasan -I$(INC_$(1)) \
	  -Icsrc $$(SRCS) -o $$@ -shared
build/asan-$(1)/memprobe_testalloc.so: spec/c/testalloc.c Makefile $(DEP_$(1)) | deps
	@mkdir -p $$(@D)
	$$(CLANG) -O1 -g $$(WARN) -fPIC $$(SAN) -shared-libasan -I$(INC_$(1)) \
	  $$< -o $$@ -shared -ldl
endef
$(foreach r,$(RUNTIMES),$(eval $(call harden_rule,$(r))))

asan_build = build/asan-$(1)/memprobe/core.so build/asan-$(1)/memprobe_testalloc.so
# $(1) runtime, $(2) Lua prelude (LUA_INIT)
# Without a prelude each spec file runs in a busted of its own
# (tools/busted-all.sh); with the aggressive GC the suite runs in one
# process, as before (run a file at a time, LuaJIT's exact-byte specs
# failed there twice in two runs).
asan_run = echo "== ASan+UBSan $(if $(2),with an aggressive GC)" && \
  $(if $(2),LUA_INIT='$(2)' $(ASAN_ENV) $(call run,asan-$(1)) \
    $(LUA_$(1)) $(call busted_of,$(1)),LUA_INIT= BUSTED_ENV='$(ASAN_ENV)' \
    sh tools/busted-all.sh asan-$(1)=$(LUA_$(1))=$(call busted_of,$(1)))
valgrind_run = echo "== valgrind busted on $(LUA_$(1)) $(if $(2),(aggressive GC))" && \
  LUA_INIT='$(2)' $(call run,$(1)) $(VALGRIND) $(3) $(LUA_$(1)) $(call busted_of,$(1))

# The plain builds serve the C panic host and nginx (examples/openresty),
# which run outside the sanitizer.
asan-quick: build testalloc $(call asan_build,5.4)
	@$(call asan_run,5.4,)

asan: build testalloc $(foreach r,$(ASAN_RUNTIMES),$(call asan_build,$(r)))
	@set -e; $(foreach r,$(ASAN_RUNTIMES),$(call asan_run,$(r),); \
	  $(call asan_run,$(r),$(call gc_aggressive,$(r)));)

VALGRIND_RUNTIMES := 5.4 jit $(filter 5.5,$(RUNTIMES))
# VALGRIND_SPECS: spec files to run instead of the whole suite.
valgrind: build testalloc
	@VALGRIND_SPECS='$(VALGRIND_SPECS)' sh tools/valgrind.sh $(foreach r,$(VALGRIND_RUNTIMES),\
	  '$(r)=$(LUA_$(r))=$(call busted_of,$(r))=$(call gc_aggressive,$(r))')

fuzz-build: $(FUZZ_BINS)

# The library is compiled once for all the fuzz targets (instrumented for
# coverage, without libFuzzer's main), each target links it.
FUZZ_OBJS := $(patsubst csrc/%.c,build/fuzz/obj/%.o,$(SRCS))
.SECONDARY: $(FUZZ_OBJS)
build/fuzz/obj/%.o: csrc/%.c $(HDRS) | deps
	@mkdir -p $(@D)
	$(CLANG) -O1 -g $(WARN) -fsanitize=fuzzer-no-link $(SAN) -I$(INC_5.4) -Icsrc \
	  -c $< -o $@

build/fuzz/%: fuzz/%.c fuzz/fuzz.h $(FUZZ_OBJS) $(HDRS) | deps
	@mkdir -p $(@D)
	$(CLANG) -O1 -g $(WARN) -Wno-missing-prototypes -fsanitize=fuzzer $(SAN) \
	  -I$(INC_5.4) -Icsrc -Ifuzz $< $(FUZZ_OBJS) -o $@ -llua5.4

fuzz: $(FUZZ_BINS)
	@sh tools/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

fuzz-smoke: $(FUZZ_BINS)
	@sh tools/fuzz.sh $(FUZZ_SMOKE) $(FUZZ_BINS)

build/bench/rawread: bench/rawread.c | deps
	@mkdir -p $(@D)
	$(CC) -O2 $(WARN) $< -o $@

# One table: every figure with its reference (psutil, plain C reads, the
# collector, the run without the hook). Slab rows need root; not in test.
bench: build testalloc build/bench/rawread
	@$(call run,5.4) lua5.4 bench/run.lua build/bench/rawread

# What the steps use is built first, a job per core; the steps then run
# one after the other, each timed (busted-all.sh runs spec files side by
# side itself, and the timing specs alone).
TEST_BUILDS := build testalloc build/embed/host build/tsan/host \
               $(call asan_build,5.4) $(FUZZ_BINS) skynet
NPROC := $(shell nproc 2>/dev/null || echo 2)
TEST_STEPS := lint docs rockcheck embed tsan asan-quick fuzz-smoke busted
test:
	@start=$$(date +%s); $(MAKE) --no-print-directory -j$(NPROC) $(TEST_BUILDS) && \
	  echo "== builds: $$(($$(date +%s) - start)) s"
	@set -e; for s in $(TEST_STEPS); do start=$$(date +%s); \
	  $(MAKE) --no-print-directory $$s; echo "== $$s: $$(($$(date +%s) - start)) s"; done
