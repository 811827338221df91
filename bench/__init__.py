"""Benchmarks that print figures (bench/README.md); run each as `python bench/<name>.py`."""
