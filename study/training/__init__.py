"""Training floor: the optimiser recipe and loop (trainer), one run (runner), many runs (workers), resumption (checkpoint)."""
