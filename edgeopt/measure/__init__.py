"""Measurement: latency statistics, peak memory, accuracy metrics, in a separate process per candidate."""
