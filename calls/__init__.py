"""Call records: one per citizen's call, from the first ring to the last event, kept in Redis."""
