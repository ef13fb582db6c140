"""Upstream-shaped load: scenarios for tests, benchmarks and the demo."""
