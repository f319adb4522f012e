"""Benchmarks of ctsync against the sandboxes (`make bench`, `make bench-quick`); see docs/benchmarks.md."""
