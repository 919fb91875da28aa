# make bench: owned by bench/. Included by the top Makefile (BIN, PYTHON,
# ALL_CFLAGS, LDLIBS_ALL come from there).
#
#   make bench [BENCH_RUNS=5] [BENCH_SECONDS=5] [BENCH_ONLY=suite,load,ceiling,backend]
#       prints one table, writes $(BENCH_OUT)/bench.json and bench.html
#       (self-contained chart). About 5 minutes on 2 cores.
#   make bench-client    builds build/bench/uptls-hsclient (the handshake load client)
#   make bench-svg       docs/bench.svg (README's chart) from $(BENCH_OUT)/bench.html
#
# The reference proxy is built if it can be; if it does not build or does
# not answer, its column says "not available: <reason>".
BENCH_RUNS    ?= 5
BENCH_SECONDS ?= 5
BENCH_ONLY    ?=
BENCH_OUT     ?= reports/out
BENCH_CLIENT  := build/bench/uptls-hsclient
BENCH_LIBS    := $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto)

.PHONY: bench bench-client bench-svg
bench-client: $(BENCH_CLIENT)

bench-svg:
	$(PYTHON) bench/snapshot_svg.py '$(BENCH_OUT)/bench.html' docs/bench.svg

$(BENCH_CLIENT): bench/hsclient.c
	@mkdir -p build/bench
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BENCH_LIBS)

bench: $(BIN)/uptls-certgen $(BIN)/uptls-backend $(BENCH_CLIENT)
	-@$(MAKE) --no-print-directory $(BIN)/uptls-proxy >build/bench/proxy-build.log 2>&1 \
	  || echo "bench: bin/uptls-proxy did not build (see build/bench/proxy-build.log)"
	$(PYTHON) bench/bench.py --runs '$(BENCH_RUNS)' --seconds '$(BENCH_SECONDS)' \
	  --out '$(BENCH_OUT)' --client '$(BENCH_CLIENT)' $(if $(BENCH_ONLY),--only '$(BENCH_ONLY)')
