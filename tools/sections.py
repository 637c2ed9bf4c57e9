"""Generated sections inside hand-written Markdown, between `<!-- name:start -->` and `<!-- name:end -->`."""

from __future__ import annotations

import re


def replace_section(text: str, name: str, body: str) -> str:
    """`text` with the part between its `<!-- name:start -->`/`<!-- name:end -->` markers set to body."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"the text lacks the {start} ... {end} markers")
    return pattern.sub(lambda _: f"{start}\n{body}{end}", text)
