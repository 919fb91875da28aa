# Report targets (make compare): owned by reports/.
