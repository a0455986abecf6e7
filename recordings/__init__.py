"""Call recording: MixMonitor spool, retention, audited access (issue 4)."""
