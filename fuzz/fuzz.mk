# Fuzzing (libFuzzer): owned by fuzz/. Included by the top Makefile.
#
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_TARGETS="proxy_conf ..."]
#       builds each target with clang -fsanitize=fuzzer,address,undefined and
#       runs it for FUZZ_SECONDS, one after the other, on a scratch corpus
#       (fuzz/corpus-run/<target>/, gitignored) seeded from the committed
#       fuzz/corpus/<target>/. A crash stops the run; its input is written
#       to fuzz/corpus-run/<target>-crash-* (make it a regression: copy it
#       to fuzz/regressions/<target>/).
#   make fuzz-replay
#       builds each target with $(CC) -fsanitize=address,undefined and a
#       plain main (fuzz/fuzz_replay.c: no libFuzzer, no clang needed) and
#       runs it on every committed seed and regression input
#       (tests/test_sanitizers.py does this in make test).
#
# Targets: proxy_conf (configuration parser), proxy_request (HTTP request
# parser), proxy_response (HTTP response parser), backend_request
# (uptls-backend's request parser), backend_faults (uptls-backend's fault
# specification: --listeners lines and --fault on the command line). Each
# fuzz_*.c says what it covers and how.

FUZZ_SECONDS  ?= 60
FUZZ_CC       ?= clang
FUZZ_TARGETS  ?= proxy_conf proxy_request proxy_response backend_request backend_faults
FUZZ_ARGS     ?=
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS    = -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) -Wno-missing-prototypes $(PKG_CFLAGS)
FUZZ_OUT      := build/fuzz

PROXY_LIB_SRCS   := reference-proxy/proxy_ssl.c reference-proxy/proxy_verify.c reference-proxy/proxy_log.c \
                    reference-proxy/proxy_util.c reference-proxy/proxy_fault.c
BACKEND_LIB_SRCS := $(filter-out harness/backend/backend_main.c harness/backend/backend_http.c,\
                      $(wildcard harness/backend/*.c))
# the sources each target links besides its own fuzz/fuzz_<target>.c (which
# #includes the file whose static parser it calls)
FUZZ_SRCS_proxy_conf      := $(PROXY_LIB_SRCS)
FUZZ_SRCS_proxy_request   := reference-proxy/proxy_conf.c $(PROXY_LIB_SRCS)
FUZZ_SRCS_proxy_response  := reference-proxy/proxy_conf.c $(PROXY_LIB_SRCS)
FUZZ_SRCS_backend_request := $(BACKEND_LIB_SRCS)
FUZZ_SRCS_backend_faults  := $(BACKEND_LIB_SRCS) harness/backend/backend_http.c $(COMMON_SRCS)

FUZZ_DEPS := $(wildcard fuzz/*.c fuzz/*.h reference-proxy/*.c reference-proxy/*.h \
               harness/backend/*.c harness/backend/*.h)

$(FUZZ_OUT)/libfuzzer/fuzz_%: $(FUZZ_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ fuzz/fuzz_$*.c \
	  $(FUZZ_SRCS_$*) $(PKG_LIBS)

$(FUZZ_OUT)/replay/fuzz_%: $(FUZZ_DEPS)
	@mkdir -p $(@D)
	$(CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -o $@ fuzz/fuzz_replay.c fuzz/fuzz_$*.c \
	  $(FUZZ_SRCS_$*) $(PKG_LIBS)

.PHONY: fuzz fuzz-build fuzz-replay
fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_OUT)/libfuzzer/fuzz_%)

fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus-run/$$t; \
	  echo "== fuzz $$t: $(FUZZ_SECONDS) s"; \
	  if ! $(FUZZ_OUT)/libfuzzer/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	      -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
	      -artifact_prefix=fuzz/corpus-run/$$t- $(FUZZ_ARGS) \
	      fuzz/corpus-run/$$t fuzz/corpus/$$t >fuzz/corpus-run/$$t.log 2>&1; then \
	    tail -40 fuzz/corpus-run/$$t.log; echo "fuzz $$t: FAILED (fuzz/corpus-run/$$t.log)"; exit 1; \
	  fi; \
	  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec|Done )' \
	    fuzz/corpus-run/$$t.log; \
	done

fuzz-replay: $(FUZZ_TARGETS:%=$(FUZZ_OUT)/replay/fuzz_%)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  files=$$(find fuzz/corpus/$$t fuzz/regressions/$$t -type f 2>/dev/null | sort); \
	  echo "== replay $$t: $$(echo $$files | wc -w) inputs"; \
	  $(FUZZ_OUT)/replay/fuzz_$$t $$files; \
	done
