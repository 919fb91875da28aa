# libuptls-common: owned by harness/common/ (see its README.md). Defines
# $(COMMON_LIB), the static archive uptls-certgen, uptls-backend and
# uptls-proxy link. Included by the top Makefile before the programs'
# fragments.
#
#   make build/common/libuptls-common.a
#
# COMMON_BUILD lets a second build keep its objects apart;
# make asan builds its own copy (soak/soak.mk, $(ASAN_DIR)/lib).

COMMON_SRCS  := $(wildcard harness/common/*.c)
COMMON_BUILD ?= build/common
COMMON_OBJS   = $(patsubst harness/common/%.c,$(COMMON_BUILD)/%.o,$(COMMON_SRCS))
COMMON_LIB    = $(COMMON_BUILD)/libuptls-common.a

$(COMMON_LIB): $(COMMON_OBJS)
	rm -f $@
	$(AR) rcs $@ $(COMMON_OBJS)

$(eval $(call c_objects,harness/common,$(COMMON_BUILD)))

# The library's own test driver (harness/common/test_common.py runs it).
$(COMMON_BUILD)/uc_selftest: harness/common/test/uc_selftest.c $(COMMON_LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(COMMON_LIB) $(LDFLAGS) $(LDLIBS_ALL)
