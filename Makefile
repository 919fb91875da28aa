# uptls — conformance harness for a reverse proxy's upstream TLS.
# See README.md for the user's commands; each C component keeps its build
# rules in a fragment next to its sources (fixtures/certgen.mk,
# harness/backend.mk, reference-proxy/proxy.mk); the plumbing the three
# share is a static library, harness/common/common.mk.

PYTHON     ?= /usr/bin/python3
CC         ?= cc
TARGET     ?= reference
TARGET_BIN ?=
SCENARIOS  ?=
REPORT_DIR ?= reports/out
KEEP       ?=
BASELINE   ?=
SHARD      ?=

PKG_CFLAGS := $(shell pkg-config --cflags openssl libevent libevent_openssl 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs openssl libevent libevent_openssl 2>/dev/null)

WARN      := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wpointer-arith -Wformat=2 -Wno-unused-parameter
CFLAGS    ?= -O2 -g
# The one sanitizer recipe for the three programs (make asan, certgen-asan,
# backend-asan, proxy-asan): ASan + UBSan, and a UBSan report stops the
# program (-fno-sanitize-recover), so it fails the run as an ASan one does.
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(PKG_CFLAGS) $(SAN_CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) $(SAN_CFLAGS)

BIN := bin

# $(eval $(call c_objects,SRC_DIR,OBJ_DIR)): compile SRC_DIR/%.c into
# OBJ_DIR/%.o with ALL_CFLAGS, header dependencies tracked (-MMD); each C
# fragment (common.mk, certgen.mk, backend.mk) uses it for its objects.
define c_objects
$(2)/%.o: $(1)/%.c | $(2)
	$$(CC) $$(ALL_CFLAGS) -MMD -MP -c -o $$@ $$<
$(2):
	mkdir -p $$@
-include $$(wildcard $(2)/*.d)
endef

.PHONY: all deps conformance test clean help
all:

include harness/common/common.mk
include fixtures/certgen.mk
include harness/backend.mk
include reference-proxy/proxy.mk
include reports/reports.mk
include bench/bench.mk
-include fuzz/fuzz.mk
-include soak/soak.mk

$(BIN):
	mkdir -p $(BIN)

help:
	@echo "make                 build bin/uptls-certgen bin/uptls-backend bin/uptls-proxy"
	@echo "make deps            install everything: every target and the test tools (apt-get, npm; idempotent)"
	@echo "make deps TARGET=t   only what building uptls and running target t need (DRY_RUN=1 prints it)"
	@echo "make conformance     TARGET=<target>|exec:PATH [TARGET_BIN=...] [SCENARIOS=glob] [REPORT_DIR=...] [KEEP=1]"
	@echo "make limbo           LIMBO=suite.json TARGET=t [TARGET_BIN=...] [LIMBO_INCLUDE=glob] [LIMBO_EXCLUDE=glob] [REPORT_DIR=...]"
	@echo "make repro           TARGET=t SCENARIO=id [TARGET_BIN=...] [OUT=dir]"
	@echo "make test            the harness's own tests"
	@echo "make scenario-help   regenerate the keys' help in scenarios/README.md from the tables"

# TARGET only when given (make deps TARGET=t, or in the environment): the
# default TARGET=reference above must not make a bare `make deps` lean.
deps:
	sh tests/install-deps.sh $(if $(filter file,$(origin TARGET)),,$(TARGET))

# The scenario keys' help in scenarios/README.md, drawn from the tables that
# validate them (tests/test_catalogue.py fails when it is out of date).
.PHONY: scenario-help
scenario-help:
	PYTHONPATH=harness:reports $(PYTHON) -m uptls.scenario_help

# One pytest test per scenario; exit 0 only when no verdict is fail or error,
# 2 with one line when the target binary is missing or will not start.
PYTEST_ARGS ?=
conformance: all
	$(PYTHON) -m pytest harness/conformance -q -rfE --no-header -p no:cacheprovider \
	  --target='$(TARGET)' --target-bin='$(TARGET_BIN)' --scenarios='$(SCENARIOS)' \
	  --report-dir='$(REPORT_DIR)' $(if $(KEEP),--keep) $(if $(STRICT),--strict-deviations) \
	  $(if $(BASELINE),--baseline='$(BASELINE)') $(if $(SHARD),--shard='$(SHARD)') \
	  $(if $(DEVIATIONS),--deviations='$(DEVIATIONS)') $(PYTEST_ARGS)

# One scenario against one target as a folder a maintainer can run without
# uptls (run.sh: exit 0 conforms, 1 the finding reproduces, 2 could not run).
SCENARIO ?=
OUT      ?=
.PHONY: repro
repro: all
	PYTHONPATH=harness $(PYTHON) -m uptls.repro --target='$(TARGET)' --scenario='$(SCENARIO)' \
	  --target-bin='$(TARGET_BIN)' --out='$(OUT)'

# An x509-limbo suite through a target: one scenario limbo/<case id> per
# case (harness/uptls/limbo_run.py); results in $(REPORT_DIR)/limbo/.
LIMBO         ?=
LIMBO_INCLUDE ?=
LIMBO_EXCLUDE ?=
.PHONY: limbo
limbo: all
	@test -n '$(LIMBO)' || { echo "make limbo: LIMBO=path/to/limbo.json is required" >&2; exit 2; }
	PYTHONPATH=harness:reports $(PYTHON) -m uptls.limbo_run --suite='$(LIMBO)' \
	  --target='$(TARGET)' --target-bin='$(TARGET_BIN)' --include='$(LIMBO_INCLUDE)' \
	  --exclude='$(LIMBO_EXCLUDE)' --report-dir='$(REPORT_DIR)' $(if $(KEEP),--keep)

# The harness's own tests (what .ci/run calls): component tests, the
# driver and catalogue tests, the discrimination tests (every scenario fails
# on a known-bad proxy), then the catalogue against nginx and uptls-proxy as
# a user runs it.
test: all
	$(PYTHON) -m pytest -q
	$(MAKE) --no-print-directory conformance TARGET=nginx STRICT=1 REPORT_DIR=$(REPORT_DIR)
	$(MAKE) --no-print-directory conformance TARGET=reference STRICT=1 REPORT_DIR=$(REPORT_DIR)

# ASan+UBSan builds of the three C programs in build/asan/bin, the catalogue
# and their own tests against them; any sanitizer report fails (soak/soak.mk).
.PHONY: asan
asan: asan-run

clean:
	rm -rf $(BIN) build fixtures/out reports/out

# The C code's style is .clang-format's (tests/test_format.py checks it).
.PHONY: format
format:
	clang-format -i --style=file $$(git ls-files '*.c' '*.h')
