"""Output: rich tables for people (`console`), json/ndjson/csv/markdown for machines (`machine`).

Command-specific renderers live beside these as `render/<command>.py` and build on the two shared
modules, so every command formats numbers, times and untrusted text the same way.
"""
