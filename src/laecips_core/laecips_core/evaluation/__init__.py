"""Offline evaluation of LAECIPS and its baselines on a stream: its options (config), the stream (sources),
the starting f and h (start_model), delta (calibration), the replay (simulate, records, updates, miners),
results.json and tables (results), the whole run (pipeline), its figures (plots) and the checks of
`make demo` (demo_report)."""
