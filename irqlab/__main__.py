"""``python -m irqlab doctor`` checks the environment the course needs."""
from __future__ import annotations

import sys

USAGE = "usage: python -m irqlab doctor    (check Graphviz, ipywidgets, JupyterLab and irqlab; print fixes)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["doctor"]:
        from .doctor import main as doctor

        return doctor(argv[1:])
    print(USAGE)
    return 0 if not argv or argv[0] in ("-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main())
