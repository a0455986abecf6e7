"""The ground floor: pieces every package may use and that import no package of ours (clock,
asyncio helpers, privacy masking, YAML with positions, private files, metrics)."""
