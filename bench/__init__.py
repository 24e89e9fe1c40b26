"""Benchmarks: each script starts what it needs, loads the app from a separate process on
127.0.0.1, checks correctness afterwards and prints numbers with the ratio to a
baseline measured in the same run. See BENCHMARKS.md."""
