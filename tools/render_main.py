"""`scripts/render`: write every generated file; `--check` only lists the stale ones (exit 1)."""

from __future__ import annotations

import os
import sys

from .render import all_artifacts
from .stacks import ROOT


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, text in sorted(all_artifacts().items()):
        full = os.path.join(ROOT, path)
        current = open(full).read() if os.path.exists(full) else None
        if current == text:
            continue
        stale.append(path)
        if not check:
            os.makedirs(os.path.dirname(full) or ".", exist_ok=True)
            with open(full, "w") as fh:
                fh.write(text)
    for path in stale:
        print(("stale: " if check else "wrote: ") + path)
    return 1 if (check and stale) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
