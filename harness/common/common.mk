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

$(COMMON_BUILD)/%.o: harness/common/%.c | $(COMMON_BUILD)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(COMMON_BUILD):
	mkdir -p $@

-include $(COMMON_OBJS:.o=.d)
