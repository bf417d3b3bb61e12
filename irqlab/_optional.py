"""Optional dependencies: import one, or fail with an error that names the extra to install.

Not a kernel model. A plain ``pip install irqlab`` brings only what the model, the storm engine and the
diagrams need (numpy, graphviz, tqdm); the widgets and the storm report's figure need the ``course`` extra
(ipywidgets, matplotlib, JupyterLab). ``require`` imports such a module, or raises :class:`MissingExtra`,
a ``ModuleNotFoundError`` whose message is the exact command to run.
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtra", "require", "EXTRAS"]

# The extras of pyproject.toml that a user may need, and what each one is for (README, doctor and tests read it).
EXTRAS = {
    "course": "the widgets and figures of the course, and JupyterLab to run its notebooks",
    "test": "the test suite (pytest, hypothesis, nbclient, Playwright, repo2docker)",
}


class MissingExtra(ModuleNotFoundError):
    """An optional package is not installed; the message says which extra of irqlab brings it."""

    def __init__(self, module: str, extra: str, what: str):
        self.extra = extra
        self.what = what
        super().__init__(f"{what} needs {module}, which is not installed: pip install 'irqlab[{extra}]' "
                         f"(from a checkout: pip install -e '.[{extra}]')", name=module)


def require(module: str, *, extra: str, what: str) -> ModuleType:
    """Import ``module`` (e.g. ``"matplotlib.figure"``), or raise :class:`MissingExtra` naming ``extra``.

    ``what`` is the public function that needs it, as the user called it (``"irqlab.widgets.storm_report"``).
    Only a missing ``module`` (or a package above it) becomes ``MissingExtra``; a broken installation's own
    import error goes through unchanged, since installing the extra again would not mend it.
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}: one of {', '.join(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):
            raise MissingExtra(module.split(".")[0], extra, what) from e
        raise
