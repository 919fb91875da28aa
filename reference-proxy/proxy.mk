# uptls-proxy: owned by reference-proxy/. Defines $(BIN)/uptls-proxy.
# Included by the top Makefile, which defines BIN, ALL_CFLAGS and LDLIBS_ALL.
#   make bin/uptls-proxy                     the build
#   make proxy-asan                          the sanitizer build (SAN_FLAGS, soak/soak.mk's
#                                            build/asan/bin/uptls-proxy), copied to bin/uptls-proxy-asan
#   make proxy-test                          reference-proxy/test_proxy.py (pytest)

PROXY_SRCS := $(wildcard reference-proxy/*.c)
# everything but main(): what fuzz/fuzz.mk links into its targets
PROXY_LIB_SRCS := $(filter-out reference-proxy/proxy_main.c,$(PROXY_SRCS))
PROXY_OBJS := $(patsubst reference-proxy/%.c,build/proxy/%.o,$(PROXY_SRCS))

all: $(BIN)/uptls-proxy

$(BIN)/uptls-proxy: $(PROXY_OBJS) $(COMMON_LIB) | $(BIN)
	$(CC) -o $@ $(PROXY_OBJS) $(COMMON_LIB) $(LDLIBS_ALL)

$(eval $(call c_objects,reference-proxy,build/proxy))

# The sanitizer build itself is soak/soak.mk's (make asan builds all three
# programs the same way, with the common library); this is its name for the
# proxy alone, and bin/uptls-proxy-asan a copy of it.
$(BIN)/uptls-proxy-asan: build/asan/bin/uptls-proxy | $(BIN)
	cp $< $@

.PHONY: proxy-asan proxy-test
proxy-asan: $(BIN)/uptls-proxy-asan

proxy-test: $(BIN)/uptls-proxy
	$(PYTHON) -m pytest -q reference-proxy/test_proxy.py
