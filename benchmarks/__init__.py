"""Benchmarks: measurements of the app and its library, runnable as `python -m benchmarks.<name>`."""
