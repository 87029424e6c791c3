# mpmake's own build. `make demo` and `make test` are the README's quick start.
# (This Makefile is run by plain GNU make; it is also a fine mpmake test.)

NODE_MODULES := node_modules/.package-lock.json
SHIM         := build/mpmake-shim
EXEC         := build/mpmake-exec
SPAWND       := build/mpmake-spawnd
PRELOAD      := build/mpmake-preload.so
TSBUILD      := dist/.built
CC          ?= cc
TS_SOURCES   := $(shell find lib cli test benchmarks fixtures -name '*.ts' -not -path '*/node_modules/*' 2>/dev/null)

.PHONY: all build deps demo test test-cluster check lint format bench clean message-checks

all: build

build: $(TSBUILD) $(SHIM) $(EXEC) $(SPAWND) $(PRELOAD)

$(NODE_MODULES): package.json
	npm install --no-audit --no-fund
	@touch $@

$(TSBUILD): $(NODE_MODULES) tsconfig.json $(TS_SOURCES)
	npx tsc -p tsconfig.json
	@chmod +x dist/cli/*.js
	@# A .ts removed or renamed leaves its old .js behind (a stale test would still run): drop it.
	@find dist -name '*.js' | while read -r f; do s=$${f#dist/}; [ -e "$${s%.js}.ts" ] || rm -f "$$f" "$$f.map"; done
	@touch $@

# The native shim: one C file, no dependencies. Where no C compiler works,
# mpmake uses its TypeScript fallback shim and says so once.
$(SHIM): lib/shim/shim.c lib/shim/revalidate.h
	@mkdir -p build
	$(CC) -O2 -Wall -Wextra -std=c99 -D_GNU_SOURCE -o $@ $< || \
	  { echo "mpmake: no working C compiler; the slower TypeScript shim will be used" >&2; rm -f $@; }

# What lets make reach the shim with nothing on its command line: loaded
# into make (LD_PRELOAD), it starts the shim in place of each program make
# runs. Without it mpmake gives make SHELL=<shim> (visible in MAKEFLAGS).
$(PRELOAD): lib/shim/preload.c
	@mkdir -p build
	$(CC) -O2 -Wall -Wextra -std=gnu99 -D_GNU_SOURCE -shared -fPIC -o $@ $< -ldl || \
	  { echo "mpmake: could not build the make interposer; makefiles will see SHELL=<shim>" >&2; rm -f $@; }

# The agent's job launcher and supervisor (lib/agent/job-exec.c). Without
# it the agent falls back to a /bin/sh wrapper, and jobs may outlive an
# agent that is killed.
$(EXEC): lib/agent/job-exec.c lib/agent/lease.h lib/agent/exec-failed.h
	@mkdir -p build
	$(CC) -O2 -Wall -Wextra -std=c99 -D_GNU_SOURCE -o $@ $< || \
	  { echo "mpmake: no working C compiler; agents use the /bin/sh job wrapper" >&2; rm -f $@; }

# The agent's job spawner (lib/agent/spawn-server.c): forking a small
# process per job instead of the agent itself. Without it jobs are started
# with Node's child_process (slower per job).
$(SPAWND): lib/agent/spawn-server.c lib/agent/lease.h lib/agent/exec-failed.h lib/shim/revalidate.h
	@mkdir -p build
	$(CC) -O2 -Wall -Wextra -std=c99 -D_GNU_SOURCE -o $@ $< || \
	  { echo "mpmake: no working C compiler; agents spawn jobs with Node" >&2; rm -f $@; }

demo: build
	node dist/cli/mpm.js demo

# Debian packages for the cluster test bed, munge, the CMake tree (root installs them).
deps:
	@bash deploy/install-deps.sh

# Test files run TEST_JOBS at a time: one per CPU, at least two. (tap's own
# default leaves a CPU free, which is one file at a time on two CPUs, while
# most of a test's time goes waiting on agents, builds and timers.) The
# TEST_SERIAL ones run alone: they stop agents mid-build and rely on
# heartbeats and leases of a second or two, or count a pool's concurrency.
TEST_JOBS   ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ "$$n" -ge 2 ] 2>/dev/null || n=2; echo $$n)
TEST_SERIAL := dist/test/faults dist/test/jobserver/concurrency.test.js

test: build deps
	npx tap --disable-coverage --reporter=base --timeout=1200 --jobs=$(TEST_JOBS) \
	  $(addprefix --serial=,$(TEST_SERIAL)) 'dist/test/**/*.test.js'

# Only the cluster test bed's tests (namespaces, sshfs; root). They skip,
# with one line saying what is missing, where the machine cannot run them.
test-cluster: build deps
	npx tap --disable-coverage --reporter=base --timeout=1200 'dist/test/cluster/*.test.js'

# GNU make's own test suite (make-dfsg 4.3 and 4.4.1, fetched with apt-get
# source) through plain make and through mpmake; figures in benchmarks/results/.
test-gnumake: build
	bash benchmarks/gnumake-suite.sh

check: $(NODE_MODULES)
	npx tsc -p tsconfig.json --noEmit
	npx eslint lib cli test benchmarks fixtures
	npx prettier --check lib cli test benchmarks fixtures

format: $(NODE_MODULES)
	npx prettier --write lib cli test benchmarks fixtures

bench: build
	node dist/benchmarks/run-all.js

clean:
	rm -rf dist build .tap

# The wire messages' checks, generated from their schemas (lib/protocol/message-check-source.ts).
message-checks: $(TSBUILD)
	node --input-type=module -e "import('./dist/lib/protocol/message-check-source.js').then((m) => process.stdout.write(m.messageCheckSource()))" > lib/protocol/message-checks.generated.ts
	npx prettier --write lib/protocol/message-checks.generated.ts
