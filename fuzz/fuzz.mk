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

# Each target links the objects of the program it fuzzes, built here with
# the fuzzing flags (libFuzzer's coverage, the sanitizers) from the sources
# the programs' own fragments list: $(PROXY_LIB_SRCS) (reference-proxy/
# proxy.mk), $(BACKEND_LIB_SRCS) (harness/backend.mk), $(COMMON_SRCS)
# (harness/common/common.mk); main() is each target's own.
FUZZ_SRCS_proxy_conf      = $(PROXY_LIB_SRCS) $(COMMON_SRCS)
FUZZ_SRCS_proxy_request   = $(PROXY_LIB_SRCS) $(COMMON_SRCS)
FUZZ_SRCS_proxy_response  = $(PROXY_LIB_SRCS) $(COMMON_SRCS)
FUZZ_SRCS_backend_request = $(BACKEND_LIB_SRCS) $(COMMON_SRCS)
FUZZ_SRCS_backend_faults  = $(BACKEND_LIB_SRCS) $(COMMON_SRCS)
# calls a target replaces, with no change to the program (ld --wrap: the
# program's call to f reaches the target's __wrap_f; see each fuzz_*.c)
FUZZ_WRAP_proxy_conf      = getaddrinfo glob proxy_ssl_ctx_build
FUZZ_WRAP_proxy_request   = bufferevent_socket_connect
FUZZ_WRAP_proxy_response  = bufferevent_socket_connect

FUZZ_HDRS := $(wildcard fuzz/*.h reference-proxy/*.h harness/backend/*.h harness/common/*.h)

# objects: $(FUZZ_OUT)/<libfuzzer|replay>/obj/<source path>.o
$(FUZZ_OUT)/libfuzzer/obj/%.o: %.c $(FUZZ_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c -o $@ $<

$(FUZZ_OUT)/replay/obj/%.o: %.c $(FUZZ_HDRS)
	@mkdir -p $(@D)
	$(CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -c -o $@ $<

# the link of each target, per variant:
#   $(call FUZZ_LINK,target,variant,compiler,flags,main source if not libFuzzer's)
define FUZZ_LINK
$(FUZZ_OUT)/$(2)/fuzz_$(1): fuzz/fuzz_$(1).c $(5) \
    $(patsubst %.c,$(FUZZ_OUT)/$(2)/obj/%.o,$(FUZZ_SRCS_$(1))) $(FUZZ_HDRS)
	$(3) $$(FUZZ_CFLAGS) $(4) -o $$@ $(5) fuzz/fuzz_$(1).c \
	  $(patsubst %.c,$(FUZZ_OUT)/$(2)/obj/%.o,$(FUZZ_SRCS_$(1))) \
	  $(foreach f,$(FUZZ_WRAP_$(1)),-Wl,--wrap=$(f)) $$(PKG_LIBS)
endef
FUZZ_ALL := proxy_conf proxy_request proxy_response backend_request backend_faults
$(foreach t,$(FUZZ_ALL),$(eval $(call FUZZ_LINK,$(t),libfuzzer,$(FUZZ_CC),-fsanitize=fuzzer $(FUZZ_SAN),)))
$(foreach t,$(FUZZ_ALL),$(eval $(call FUZZ_LINK,$(t),replay,$(CC),$(FUZZ_SAN),fuzz/fuzz_replay.c)))

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
