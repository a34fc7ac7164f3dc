"""cam-audit benchmarks: `make bench` (throughput, alternatives, memory) and `make bench-full`."""
