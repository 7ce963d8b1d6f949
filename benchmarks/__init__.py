"""Benchmarks: `make bench` runs them all and prints one table with ratios against baselines."""
