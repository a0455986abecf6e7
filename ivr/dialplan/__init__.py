"""YAML dialplans: schema, loading with positions, graph checks, the live registry."""
