"""Every course notebook and every worked solution executes top to bottom, headless, with no error,
and the whole course runs in under two minutes."""
from pathlib import Path

import pytest

from nbrun import run_notebook

COURSE = Path(__file__).resolve().parents[1] / "course"
NOTEBOOKS = sorted(COURSE.glob("*.ipynb"))
SOLUTIONS = sorted((COURSE / "solutions").glob("*.ipynb"))
TIMES: dict[str, float] = {}


def test_the_course_has_notebooks():
    assert COURSE.is_dir()
    assert NOTEBOOKS, "course/ has no notebooks"


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


def test_whole_course_under_two_minutes():
    if len(TIMES) < len(NOTEBOOKS):
        pytest.skip("run with the notebook tests to measure the total")
    total = sum(TIMES.values())
    print(f"course notebooks: {total:.1f} s in all: " + ", ".join(f"{k} {v:.1f}s" for k, v in sorted(TIMES.items())))
    assert total < 120
