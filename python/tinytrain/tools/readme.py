"""Generated blocks of README.md: the benchmarks' `--readme` options rewrite the text between a
begin and an end marker (HTML comments), keeping the rest of the file."""

from __future__ import annotations

from pathlib import Path


def replace_block(readme: Path, begin: str, end: str, block: str) -> None:
    """Replace `readme`'s text from `begin` to `end` (both included) with `block`, which should
    start with `begin` and end with `end`. Exits with a message when a marker is missing."""
    text = readme.read_text()
    a, b = text.find(begin), text.find(end)
    if a < 0 or b < 0:
        raise SystemExit(f"{readme}: markers {begin!r} ... {end!r} not found")
    readme.write_text(text[:a] + block + text[b + len(end):])
