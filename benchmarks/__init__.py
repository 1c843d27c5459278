"""Benchmarks: each script writes JSON under benchmarks/results; report.py renders docs."""
