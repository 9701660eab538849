# Development driver. Installs go through the rockspec (luarocks make);
# this file reads its C sources from there so the two never disagree.

ROCKSPEC := rockspec/memprobe-scm-1.rockspec
SRCS     := $(shell grep -o '"csrc/[a-z0-9_]*\.c"' $(ROCKSPEC) | tr -d '"')
HDRS     := $(wildcard csrc/*.h)
RUNTIMES := 5.1 5.2 5.3 5.4 jit

# The interpreter and headers of each runtime.
LUA_5.1 := lua5.1
LUA_5.2 := lua5.2
LUA_5.3 := lua5.3
LUA_5.4 := lua5.4
LUA_jit := luajit
INC_5.1 := /usr/include/lua5.1
INC_5.2 := /usr/include/lua5.2
INC_5.3 := /usr/include/lua5.3
INC_5.4 := /usr/include/lua5.4
INC_jit := /usr/include/luajit-2.1

CC      ?= cc
OPT     ?= -O2 -g
# LPeg's warning set; the build must stay silent under it.
WARN    := -std=c99 -Wall -Wextra -pedantic -Wshadow -Wcast-qual \
           -Wmissing-prototypes -Wstrict-prototypes \
           -Wdeclaration-after-statement -Werror
CFLAGS  += $(OPT) $(WARN) -fPIC -fvisibility=hidden
LDFLAGS += -shared

# Debian packages the targets need (make deps installs what is missing).
PKGS := gcc make lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 \
        liblua5.3-dev lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev \
        luarocks lua-busted lua-check lua-ldoc lua-cjson lua-dkjson \
        lua-socket procps python3-psutil \
        prometheus nginx-light libnginx-mod-http-lua curl \
        valgrind pkg-config

LUA_PATH_DEV := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;
run = LUA_PATH='$(LUA_PATH_DEV)' LUA_CPATH='$(CURDIR)/build/$(1)/?.so;;'

.PHONY: all deps build test demo lint busted rockcheck docs clean \
        $(addprefix busted-,$(RUNTIMES)) embed tsan bench-tracker

all: build

deps:
	@sh tools/deps.sh $(PKGS)

build: $(foreach r,$(RUNTIMES),build/$(r)/memprobe/core.so)

define build_rule
build/$(1)/memprobe/core.so: $(SRCS) $(HDRS) $(ROCKSPEC) Makefile
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) -I$(INC_$(1)) -Icsrc $$(SRCS) -o $$@ $$(LDFLAGS)
endef
$(foreach r,$(RUNTIMES),$(eval $(call build_rule,$(r))))

lint:
	luacheck -q $(wildcard lua bin/memprobe spec examples bench)

busted: build
	@sh tools/busted-all.sh $(foreach r,$(RUNTIMES),$(r)=$(LUA_$(r)))

$(addprefix busted-,$(RUNTIMES)): busted-%: build/%/memprobe/core.so
	@echo "== busted on $(LUA_$*)"
	@$(call run,$*) $(LUA_$*) /usr/bin/busted -o utfTerminal

rockcheck:
	@sh tools/rockcheck.sh $(ROCKSPEC)

# The embedding example: two tracked states in two threads, linked
# against the system's Lua 5.4; once plain, once under ThreadSanitizer.
EMBED_CFLAGS := $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I$(INC_5.4))
EMBED_LIBS   := $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)
EMBED_SRCS   := examples/embed/host.c $(SRCS)

build/embed/host: $(EMBED_SRCS) $(HDRS) Makefile
	@mkdir -p $(@D)
	$(CC) $(OPT) $(WARN) -pthread $(EMBED_CFLAGS) -Icsrc $(EMBED_SRCS) -o $@ $(EMBED_LIBS)

build/tsan/host: $(EMBED_SRCS) $(HDRS) Makefile
	@mkdir -p $(@D)
	$(CC) -O1 -g -fsanitize=thread $(WARN) -pthread $(EMBED_CFLAGS) -Icsrc \
	  $(EMBED_SRCS) -o $@ $(EMBED_LIBS)

embed: build/embed/host
	./build/embed/host

tsan: build/tsan/host
	TSAN_OPTIONS=halt_on_error=1 ./build/tsan/host

# Callgrind instruction counts with and without the allocator hook.
bench-tracker: build/5.4/memprobe/core.so build/jit/memprobe/core.so
	@sh bench/tracker.sh

test: deps build lint docs rockcheck embed tsan busted

demo: deps build
	@$(call run,5.4) lua5.4 bin/memprobe report

docs: build
	@rm -rf build/docsrc && mkdir -p build/docsrc
	@ln -s $(CURDIR)/lua/memprobe/*.lua $(CURDIR)/csrc/*.c build/docsrc/
	@# LDoc reads files in name order and a C file's @submodule needs the
	@# module seen first: init.lua (@module memprobe) must sort first.
	@mv build/docsrc/init.lua build/docsrc/_init.lua
	@ldoc -q . >/dev/null
	@$(call run,5.4) lua5.4 tools/doccheck.lua build/docs

clean:
	rm -rf build
