# uptls-proxy: owned by reference-proxy/. Defines $(BIN)/uptls-proxy.
