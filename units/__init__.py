"""The case desk's checked lists: the units directory (承办单位) and the desk codes (处置结果,
小休原因, 事项类型), YAML per platform plus province-wide, loaded, checked and hot-reloaded like
the dialplans. See docs/operations.md ("The units directory and the desk codes")."""
