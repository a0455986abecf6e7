"""Supervisor reports: rollup counters kept as calls end, queried over any period (docs/api.md)."""
