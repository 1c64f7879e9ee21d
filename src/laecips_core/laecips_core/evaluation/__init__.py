"""Offline evaluation of LAECIPS and its baselines on a stream (pipeline), its figures (plots) and the
checks of `make demo` (demo_report)."""
