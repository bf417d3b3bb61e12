"""Every course notebook and every worked solution executes top to bottom, headless (nbclient), with no
error output and no traceback on stderr, and the whole course runs in under two minutes."""
import os
import sys
from pathlib import Path

import pytest

from nbrun import run_notebook

COURSE = Path(__file__).resolve().parents[1] / "course"
NOTEBOOKS = sorted(COURSE.glob("*.ipynb"))
SOLUTIONS = sorted((COURSE / "solutions").glob("*.ipynb"))
COURSE_BUDGET_S = 120
TIMES: dict[str, float] = {}


def test_the_course_has_notebooks():
    assert COURSE.is_dir()
    assert NOTEBOOKS, "course/ has no notebooks"


def test_python3_kernel_is_this_python():
    """The "python3" kernel nbclient starts must be this venv's Python (not a stale user-level kernelspec)."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    exe = spec.argv[0]
    if exe in ("python", "python3", "{python}"):  # ipykernel's built-in spec: runs sys.executable
        return
    assert os.path.abspath(exe) == os.path.abspath(sys.executable), (
        f"kernelspec python3 at {spec.resource_dir} runs {exe}, not {sys.executable}: "
        f"run `{sys.executable} -m ipykernel install --sys-prefix` or remove the stale kernelspec")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_course_notebook_runs(path):
    nb, elapsed, problems = run_notebook(path)
    TIMES[path.name] = elapsed
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_notebook_passes_every_check(path):
    nb, _, problems = run_notebook(path)
    assert not problems, "\n".join(problems)
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert "✗" not in text, f"a check failed in {path.name}"


def test_whole_course_under_two_minutes(capsys):
    if not NOTEBOOKS or len(TIMES) < len(NOTEBOOKS):
        pytest.skip("measured only when every course notebook ran in this session")
    total = sum(TIMES.values())
    slowest = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(TIMES.items(), key=lambda kv: -kv[1])[:3])
    with capsys.disabled():
        print(f"\n[course notebooks] {len(TIMES)} ran in {total:.1f} s (budget {COURSE_BUDGET_S} s); "
              f"slowest: {slowest}")
    assert total < COURSE_BUDGET_S, f"{total:.1f} s: " + ", ".join(f"{k} {v:.1f}s" for k, v in sorted(TIMES.items()))
