# uptls-backend: owned by harness/. Defines $(BIN)/uptls-backend.
#
#   make bin/uptls-backend            the backend
#   make backend-test                 its pytest suite (harness/backend/test_backend.py)
#   make backend-asan                 the sanitizer build (SAN_FLAGS) in build/asan/
#
# BACKEND_OBJDIR lets a second build (sanitizers) keep its objects apart.

BACKEND_SRCS   := $(wildcard harness/backend/*.c)
BACKEND_LIB_SRCS := $(filter-out harness/backend/backend_main.c,$(BACKEND_SRCS))
BACKEND_OBJDIR ?= build/backend
BACKEND_OBJS    = $(patsubst harness/backend/%.c,$(BACKEND_OBJDIR)/%.o,$(BACKEND_SRCS))

all: $(BIN)/uptls-backend

$(BIN)/uptls-backend: $(BACKEND_OBJS) $(COMMON_LIB) | $(BIN)
	$(CC) $(LDFLAGS) -o $@ $(BACKEND_OBJS) $(COMMON_LIB) $(LDLIBS_ALL)

$(eval $(call c_objects,harness/backend,$(BACKEND_OBJDIR)))

.PHONY: backend-test backend-asan
backend-test: $(BIN)/uptls-backend
	$(PYTHON) -m pytest -q harness/backend/test_backend.py

# The sanitizer build itself is soak/soak.mk's (make asan builds all three
# programs the same way); this is its name for the backend alone.
backend-asan: build/asan/bin/uptls-backend
