"""The algorithms of the paper, with no I/O: f (models), h and the baselines (mining), Algorithm 1 (fusion),
F(x) (assisted), the edge predictor (f + h on camera frames), inference backends, metrics."""
