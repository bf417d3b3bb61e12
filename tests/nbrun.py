"""Execute a notebook headless with nbclient and collect what went wrong (a helper, not a test).

The kernel is "python3" as the venv's sys-prefix kernelspec names it (`make deps` runs
`python -m ipykernel install --sys-prefix`), started with the notebook's own folder as its cwd.
"""
from __future__ import annotations

import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CELL_TIMEOUT = 120  # seconds per cell


def run_notebook(path: Path, timeout: int = CELL_TIMEOUT) -> tuple[nbformat.NotebookNode, float, list[str]]:
    """Run every cell of ``path``; return the executed notebook, the wall time (s) and the problems found:
    error outputs, and stderr streams that carry a traceback. A failing cell does not stop the run early
    (``allow_errors``) so every problem is reported at once."""
    path = Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    elapsed = time.perf_counter() - t0
    problems = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                tb = "\n".join(out.get("traceback", []))[-1500:]
                problems.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}\n{tb}")
            elif out.get("output_type") == "stream" and out.get("name") == "stderr" and "Traceback" in out.get("text", ""):
                problems.append(f"cell {i}: traceback on stderr:\n{out['text'][-1500:]}")
    return nb, elapsed, problems
