# sluice - scriptable data loading for PostgreSQL on LuaJIT.
#
#   make deps      install the Debian packages the project needs (apt-get)
#   make           build ./sluice and the Lua module sluice/core.so
#   make test      the core's C tests (no Lua), then the specs inside ./sluice
#                  against a throwaway PostgreSQL, then luacheck
#   make check-core  the core's C unit tests alone, built without LuaJIT
#   make demo      run the main example job on a throwaway PostgreSQL
#   make test-citus  the Citus specs (builds Citus from the vendored source when missing)
#   make bench     run the benchmarks (prints markdown tables)
#   make install   PREFIX=/usr/local DESTDIR= (binary, Lua library, module)
#   make test-vector-big  the 100k x 1536 pgvector load (drop, load, rebuild HNSW)

VERSION  ?= 0.1.0
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
CFLAGS   ?= -O2 -g
SANITIZE ?=
LUA_VER  ?= 5.1
PKGS     ?= luajit libpq
BUSTED_ARGS ?=
# pgvector for the test and demo servers: built from this directory's
# tarball (checked against its SHA256SUMS) when the server lacks it;
# never fetched.
VENDOR   ?= ../shared/vendor
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PGVECTOR = pgvector-0.8.6

BINDIR   = $(PREFIX)/bin
LUADIR   = $(PREFIX)/share/lua/$(LUA_VER)
CMODDIR  = $(PREFIX)/lib/lua/$(LUA_VER)

WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ALL_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -fPIC $(WARN) $(CFLAGS) $(SANITIZE) \
	$(shell pkg-config --cflags $(PKGS)) -DSLUICE_VERSION='"$(VERSION)"'
LIBS     = $(shell pkg-config --libs $(PKGS)) -lz -ledit -lm

# The core: Lua-free units (libpq, zlib and the C library only);
# `make check-core` builds and tests them without LuaJIT.
CORE_SRC = runtime/sbuf.c runtime/interrupt.c runtime/numfmt.c \
	runtime/pgconn.c runtime/redact.c runtime/spawn.c runtime/pgbin.c \
	runtime/tmpdb.c runtime/csvread.c runtime/copy.c runtime/copyparse.c \
	runtime/copyenc.c runtime/copychunk.c runtime/sink.c runtime/params.c \
	runtime/pipeline.c runtime/datetime.c runtime/tzrules.c \
	runtime/textops.c runtime/workers.c runtime/csvcut.c runtime/vecenc.c
# The Lua bindings over the core (runtime/lib_*.c), gathered by
# lib_sluice.c; with the core they make the executable (plus main.c) and
# the module sluice/core.so.
LIB_SRC = runtime/lib_sluice.c runtime/lib_interrupt.c runtime/lib_conn.c \
	runtime/lib_error.c runtime/lib_tmpdb.c runtime/lib_csv.c \
	runtime/lib_copy.c runtime/lib_copy_values.c runtime/lib_copy_binary.c runtime/lib_copy_reject.c \
	runtime/lib_copy_vector.c runtime/lib_vector.c \
	runtime/lib_copyout.c runtime/lib_sink.c runtime/lib_params.c \
	runtime/lib_batch.c runtime/lib_pipeline.c runtime/lib_progress.c \
	runtime/lib_text.c runtime/lib_workers.c
OBJDIR  ?= build
EXE     ?= sluice
MODULE   = $(OBJDIR)/sluice/core.so
CORE_OBJ = $(CORE_SRC:runtime/%.c=$(OBJDIR)/%.o) $(LIB_SRC:runtime/%.c=$(OBJDIR)/%.o)
HEADERS  = $(wildcard runtime/*.h)

DEB_PKGS = build-essential pkg-config luajit libluajit-5.1-dev libpq-dev \
	zlib1g-dev libedit-dev lua-busted lua-check lua-cjson \
	lua-argparse luarocks postgresql-15 postgresql-client-15 libcsv-dev \
	postgresql-server-dev-15

.PHONY: module install-module all tools deps deps-citus test-citus pgvector test-vector-big test check check-core demo bench install uninstall clean lint asan valgrind

all: $(EXE) $(MODULE)

$(OBJDIR)/%.o: runtime/%.c $(HEADERS)
	@mkdir -p $(OBJDIR)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(EXE): $(CORE_OBJ) $(OBJDIR)/main.o
	$(CC) $(SANITIZE) -Wl,-E -o $@ $^ $(LIBS)

$(MODULE): $(CORE_OBJ)
	@mkdir -p $(OBJDIR)/sluice
	$(CC) $(SANITIZE) -shared -o $@ $^ $(shell pkg-config --libs libpq) -lz -lm

# Installs only what is missing, so `make test` can depend on it cheaply.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@$(MAKE) --no-print-directory pgvector

# pgvector into the server's extension directory, from $(VENDOR) (its
# checksum verified first), built in build/vendor/ by mk/vendor-build.sh;
# without the tarball, how to get it is printed and the vector specs are
# pending with that message.
PGVECTOR_MISSING = pgvector is not installed and $(VENDOR)/$(PGVECTOR).tar.gz \
	is not there: the vector specs are skipped. Install pgvector 0.8 for \
	PostgreSQL 15 (a postgresql-15-pgvector package where the distribution \
	has one, or its source release built with PGXS: make PG_CONFIG=$(PG_CONFIG) \
	install), or give make VENDOR=<directory holding $(PGVECTOR).tar.gz>
pgvector:
	@sh mk/vendor-build.sh "$(VENDOR)" $(PGVECTOR) vector "$(PG_CONFIG)"; rc=$$?; \
	if [ $$rc = 3 ]; then echo "$(PGVECTOR_MISSING)"; exit 0; fi; exit $$rc

# Citus for the distributed tests (make test-citus): built from the
# vendored tarball (and its patch), checked against SHA256SUMS, when the
# server lacks it; never fetched.  AGPL-3.0, used by the tests only.
CITUS = citus-13.2.2
CITUS_PKGS = postgresql-server-dev-15 liblz4-dev libzstd-dev libcurl4-openssl-dev \
	libkrb5-dev libselinux1-dev libxslt1-dev libpam0g-dev libreadline-dev
deps-citus: deps
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(CITUS_PKGS)"
	@sh mk/vendor-build.sh "$(VENDOR)" $(CITUS) citus "$(PG_CONFIG)" configure; rc=$$?; \
	if [ $$rc = 3 ]; then \
	  echo "Citus is not installed and $(VENDOR)/$(CITUS).tar.gz is not there: install Citus 13 for PostgreSQL 15 (its packages, or its source release: ./configure PG_CONFIG=$(PG_CONFIG) && make install), or give make VENDOR=<directory holding $(CITUS).tar.gz>"; \
	  exit 1; \
	fi; exit $$rc

# The Citus specs (tests/citus/), on a coordinator and two workers.
test-citus: deps-citus
	$(MAKE) all
	./sluice --tmpdb=citus:2 tests/run.lua $(BUSTED_ARGS) tests/citus

# Helpers the specs run (tests/tools/), built here and never installed:
# netproxy, a TCP proxy that can go silent or cut (faults_net_spec.lua).
TEST_TOOLS = build/tools/netproxy
build/tools/%: tests/tools/%.c
	@mkdir -p build/tools
	$(CC) -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L $(WARN) -O1 -g -o $@ $<

tools: $(TEST_TOOLS)

# The specs run inside ./sluice; --tmpdb gives them a private PostgreSQL
# that is stopped and removed when the run ends, pass or fail.
test: deps
	$(MAKE) all tools
	$(MAKE) check-core
	./sluice --tmpdb tests/run.lua $(BUSTED_ARGS) tests
	$(MAKE) lint

check: test

lint:
	luacheck -q $(wildcard lua scripts tests bench)

demo: deps
	$(MAKE) all
	./sluice --tmpdb scripts/blog_posts.lua 5000 --sample 500 --check
	./sluice --tmpdb scripts/compare_strategies.lua metrics 200000 \
	  --strategies rowwise_autocommit,rowwise_tx,batch,pipeline,copy_text,copy_binary,copy_binary+drop_indexes
	./sluice --tmpdb scripts/embeddings.lua 200 --compare 3000

# The 100k x 1536 pgvector load (tests/big/vector_big.lua): drop the HNSW
# index, load, rebuild, check the index finds neighbours; several minutes.
test-vector-big: deps
	$(MAKE) all
	./sluice --tmpdb tests/run.lua tests/big/vector_big.lua

# The core's C unit tests (tests/core/), compiled and linked without
# LuaJIT: only libpq's headers on the include path, no Lua library.
CORE_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L $(WARN) \
	-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	$(shell pkg-config --cflags libpq) -Iruntime
check-core:
	@mkdir -p build/core
	$(CC) $(CORE_CFLAGS) -o build/core/core_test tests/core/core_test.c $(CORE_SRC) \
	  $(shell pkg-config --libs libpq) -lz -lm -lcsv
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  build/core/core_test

# Each benchmark prints markdown; peers need Python's psycopg and pgloader.
BENCH_PKGS = python3-psycopg2 python3-psycopg pgloader time
bench: deps
	$(MAKE) deps DEB_PKGS="$(BENCH_PKGS)"
	$(MAKE) all
	@for b in copy batch csv csv_read transform gen rejects datetime text rowops parallel vector; do \
	  if [ -f bench/$$b.lua ]; then \
	    echo "## bench/$$b.lua"; ./sluice --tmpdb bench/$$b.lua || exit 1; \
	  fi; \
	done

# Specs under AddressSanitizer + UBSan (a separate build in build-asan/).
ASAN_EXE = build/asan/sluice
asan: deps
	$(MAKE) tools
	$(MAKE) OBJDIR=build/asan EXE=$(ASAN_EXE) $(ASAN_EXE) \
	  SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer" CFLAGS="-O1 -g"
	SLUICE_LUADIR=$(CURDIR)/lua ASAN_OPTIONS=detect_leaks=1 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(ASAN_EXE) --tmpdb tests/run.lua tests

valgrind: all tools
	valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
	  ./sluice --tmpdb tests/run.lua tests

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUADIR)/sluice $(DESTDIR)$(CMODDIR)/sluice
	install -m 755 sluice $(DESTDIR)$(BINDIR)/sluice
	cd lua && find sluice -type f | while read f; do \
	  install -D -m 644 "$$f" "$(DESTDIR)$(LUADIR)/$$f" || exit 1; done
	install -m 755 $(MODULE) $(DESTDIR)$(CMODDIR)/sluice/core.so

# Used by the rockspec (luarocks make): the C core as a Lua module plus
# the Lua library, into the directories luarocks gives.
module: $(MODULE)

install-module: $(MODULE)
	install -d $(INST_LIBDIR)/sluice $(INST_LUADIR)/sluice
	install -m 755 $(MODULE) $(INST_LIBDIR)/sluice/core.so
	cd lua && find sluice -type f | while read f; do \
	  install -D -m 644 "$$f" "$(INST_LUADIR)/$$f" || exit 1; done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/sluice $(DESTDIR)$(CMODDIR)/sluice/core.so
	rm -rf $(DESTDIR)$(LUADIR)/sluice

clean:
	rm -rf build sluice

# Fuzzing (tests/fuzz/): libFuzzer targets over the core alone (no
# LuaJIT), built with clang, ASan and UBSan: the CSV reader, the number
# and date/time text, the COPY encoders, date/time layouts (textops), pgvector's encoders (vecenc).  `make fuzz` runs each for
# FUZZ_SECONDS from a copy of its committed seed corpus (what it finds
# stays in build/fuzz/, never in tests/); a crash, leak or mismatch fails,
# its input saved as build/fuzz/<target>-crash-* (rerun: the target, the
# file as its argument).
FUZZ_TARGETS = csvread csvdiff numbers copyenc textops vecenc
FUZZ_SECONDS ?= 30
FUZZ_CC  ?= clang
FUZZ_PKGS = clang libclang-rt-14-dev libcsv-dev
FUZZ_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L $(WARN) \
	-O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
	$(shell pkg-config --cflags libpq) -Iruntime
FUZZ_OBJ = $(CORE_SRC:runtime/%.c=build/fuzz/obj/%.o)
FUZZ_BIN = $(FUZZ_TARGETS:%=build/fuzz/%)

.PHONY: fuzz fuzz-build
build/fuzz/obj/%.o: runtime/%.c $(HEADERS)
	@mkdir -p build/fuzz/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

$(FUZZ_BIN): build/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< \
	  $(FUZZ_OBJ) $(shell pkg-config --libs libpq) -lz -lm -lcsv

fuzz-build: $(FUZZ_BIN)

fuzz: deps
	$(MAKE) deps DEB_PKGS="$(FUZZ_PKGS)"
	$(MAKE) fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  rm -rf build/fuzz/corpus/$$t && mkdir -p build/fuzz/corpus && \
	  cp -r tests/fuzz/corpus/$$t build/fuzz/corpus/$$t && \
	  echo "fuzz: $$t, $(FUZZ_SECONDS) s" && \
	  UBSAN_OPTIONS=print_stacktrace=1 \
	  build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	    -timeout=30 -print_final_stats=1 -artifact_prefix=build/fuzz/$$t- \
	    build/fuzz/corpus/$$t || exit 1; \
	done
