# uptls-proxy: owned by reference-proxy/. Defines $(BIN)/uptls-proxy.
# Included by the top Makefile, which defines BIN, ALL_CFLAGS and LDLIBS_ALL.
#   make bin/uptls-proxy                     the build
#   make proxy-asan                          ASan/UBSan build in bin/uptls-proxy-asan
#   make proxy-test                          reference-proxy/test_proxy.py (pytest)

PROXY_SRCS := $(wildcard reference-proxy/*.c)
PROXY_HDRS := $(wildcard reference-proxy/*.h)
# everything but main(): what fuzz/fuzz.mk links into its targets
PROXY_LIB_SRCS := $(filter-out reference-proxy/proxy_main.c,$(PROXY_SRCS))
PROXY_OBJS := $(patsubst reference-proxy/%.c,build/proxy/%.o,$(PROXY_SRCS))
PROXY_ASAN_OBJS := $(patsubst reference-proxy/%.c,build/proxy-asan/%.o,$(PROXY_SRCS))
PROXY_ASAN_FLAGS := $(SAN_FLAGS)

all: $(BIN)/uptls-proxy

$(BIN)/uptls-proxy: $(PROXY_OBJS) | $(BIN)
	$(CC) -o $@ $(PROXY_OBJS) $(LDLIBS_ALL)

build/proxy/%.o: reference-proxy/%.c $(PROXY_HDRS)
	@mkdir -p build/proxy
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/proxy-asan/%.o: reference-proxy/%.c $(PROXY_HDRS)
	@mkdir -p build/proxy-asan
	$(CC) $(ALL_CFLAGS) $(PROXY_ASAN_FLAGS) -c -o $@ $<

$(BIN)/uptls-proxy-asan: $(PROXY_ASAN_OBJS) | $(BIN)
	$(CC) -o $@ $(PROXY_ASAN_OBJS) $(LDLIBS_ALL) $(PROXY_ASAN_FLAGS)

.PHONY: proxy-asan proxy-test
proxy-asan: $(BIN)/uptls-proxy-asan

proxy-test: $(BIN)/uptls-proxy
	$(PYTHON) -m pytest -q reference-proxy/test_proxy.py
