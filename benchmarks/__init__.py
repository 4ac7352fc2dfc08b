"""Throughput benchmarks of the search and evaluation (python -m benchmarks.run); not run by CI except as a
tiny smoke test."""
