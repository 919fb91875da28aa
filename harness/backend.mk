# uptls-backend: owned by harness/. Defines $(BIN)/uptls-backend.
