"""Offline training: Eq. 13 (f) and Eq. 14 (h) steps (fit), the update recipes and gate of Algorithm 2
(adaptation), pre-training of the default weights (pretraining) and the training job's process (job)."""
