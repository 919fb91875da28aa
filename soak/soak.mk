# Robustness: owned by soak/. Included by the top Makefile (make asan is
# declared there and runs asan-run below).
#
#   make asan      ASan+UBSan builds (SAN_FLAGS) of uptls-certgen,
#                  uptls-backend, uptls-proxy and the common library's test
#                  driver in build/asan/bin/ (bin/ is left alone), then
#                  the whole catalogue against the reference proxy with all
#                  three sanitizer builds (UPTLS_BIN_DIR), then the three
#                  programs' own test suites against them. Every sanitizer
#                  report of any of them is written to build/asan/reports/
#                  (log_path); one report fails the run.
#   make valgrind  memcheck over a full catalogue run (proxy and backends
#                  under valgrind) and over 10,000 requests through uptls-proxy
#                  to uptls-backend over TLS; fails on any error or leak.
#   make soak      50,000 requests on 200 connections through uptls-proxy to
#                  two uptls-backends, one killed and restarted mid-run; counts
#                  statuses, checks the proxy's fds and RSS come back.
#                  SOAK_ARGS passes options to soak/soak.py (--help).

ASAN_SAN     := $(SAN_FLAGS)
ASAN_DIR     := build/asan
ASAN_REPORTS := $(abspath $(ASAN_DIR)/reports)
ASAN_PROGS   := $(ASAN_DIR)/bin/uptls-certgen $(ASAN_DIR)/bin/uptls-backend $(ASAN_DIR)/bin/uptls-proxy \
                $(ASAN_DIR)/bin/uc_selftest
# Reports go to files (one per process), so none is lost in a pipe nobody
# reads (the driver does not read the backends' stderr) and none can pass
# unseen in a test that only checks an exit status.
ASAN_ENV     := ASAN_OPTIONS=log_path=$(ASAN_REPORTS)/asan:detect_leaks=1:halt_on_error=1:abort_on_error=0 \
                UBSAN_OPTIONS=log_path=$(ASAN_REPORTS)/ubsan:print_stacktrace=1:halt_on_error=1 \
                UPTLS_BIN_DIR=$(abspath $(ASAN_DIR)/bin) UPTLS_PKI_OUT=$(abspath $(ASAN_DIR)/pki)

$(ASAN_DIR)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ASAN_SAN) -MMD -MP -c -o $@ $<

-include $(wildcard $(ASAN_DIR)/obj/*/*.d $(ASAN_DIR)/obj/*/*/*.d)

# The common library, built with the same flags, linked by all three.
ASAN_COMMON_LIB := $(ASAN_DIR)/lib/libuptls-common.a
$(ASAN_COMMON_LIB): $(COMMON_SRCS:%.c=$(ASAN_DIR)/obj/%.o)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(ASAN_DIR)/bin/uc_selftest: harness/common/test/uc_selftest.c $(ASAN_COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ASAN_SAN) -o $@ $^ $(PKG_LIBS)
$(ASAN_DIR)/bin/uptls-certgen: $(CERTGEN_SRCS:%.c=$(ASAN_DIR)/obj/%.o) $(ASAN_COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(PKG_LIBS) $(ASAN_SAN)
$(ASAN_DIR)/bin/uptls-backend: $(BACKEND_SRCS:%.c=$(ASAN_DIR)/obj/%.o) $(ASAN_COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(PKG_LIBS) $(ASAN_SAN)
$(ASAN_DIR)/bin/uptls-proxy: $(PROXY_SRCS:%.c=$(ASAN_DIR)/obj/%.o) $(ASAN_COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(PKG_LIBS) $(ASAN_SAN)

.PHONY: asan-build asan-run asan-check valgrind soak
asan-build: $(ASAN_PROGS)

asan-run: asan-build
	@rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS)
	@echo "== make asan: the catalogue (reference proxy, backends and certgen: sanitizer builds)"
	$(ASAN_ENV) $(MAKE) --no-print-directory conformance TARGET=reference \
	  TARGET_BIN=$(abspath $(ASAN_DIR)/bin/uptls-proxy) REPORT_DIR=$(ASAN_DIR)/conformance \
	  || { $(MAKE) --no-print-directory asan-check; exit 1; }
	@echo "== make asan: the C programs' own tests on the sanitizer builds"
	$(ASAN_ENV) UPTLS_CERTGEN=$(abspath $(ASAN_DIR)/bin/uptls-certgen) \
	  UPTLS_BACKEND_BIN=$(abspath $(ASAN_DIR)/bin/uptls-backend) \
	  UPTLS_PROXY_BIN=$(abspath $(ASAN_DIR)/bin/uptls-proxy) UPTLS_PROXY_FAST=1 \
	  UPTLS_COMMON_SELFTEST=$(abspath $(ASAN_DIR)/bin/uc_selftest) \
	  $(PYTHON) -m pytest -q -p no:cacheprovider harness/common/test_common.py fixtures/test_certgen.py \
	  harness/backend/test_backend.py reference-proxy/test_proxy.py -k 'not valgrind' \
	  || { $(MAKE) --no-print-directory asan-check; exit 1; }
	@$(MAKE) --no-print-directory asan-check

# Fails when any sanitizer report was written during the run.
asan-check:
	@if ls $(ASAN_REPORTS)/* >/dev/null 2>&1; then \
	  for f in $(ASAN_REPORTS)/*; do echo "---- $$f"; head -60 "$$f"; done; \
	  echo "make asan: $$(ls $(ASAN_REPORTS) | wc -l) sanitizer report(s) in $(ASAN_REPORTS)"; exit 1; \
	else echo "make asan: no sanitizer report"; fi

# memcheck over the catalogue and 10,000 requests (tests/test_sanitizers.py,
# the valgrind tests); the figures go to build/valgrind/summary.txt.
valgrind: all
	@rm -f build/valgrind/summary.txt
	UPTLS_VALGRIND=1 $(PYTHON) -m pytest -q -p no:cacheprovider -s tests/test_sanitizers.py -k valgrind
	@cat build/valgrind/summary.txt

SOAK_ARGS ?=
soak: all
	$(PYTHON) soak/soak.py $(SOAK_ARGS)
