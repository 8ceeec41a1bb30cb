"""The Mishards benchmark harness (`make bench`, docs/performance.md)."""
