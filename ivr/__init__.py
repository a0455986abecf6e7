"""The IVR: what callers hear and where they go, interpreted from YAML dialplans (issue 3)."""
