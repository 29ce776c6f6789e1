"""Benchmarks and fault drills, each runnable on its own (`python -m bench.<name>`)."""
