"""Benchmarks: repeatable scripts with seeded data; see BENCHMARKS.md. Not tests: no timing assertion."""
