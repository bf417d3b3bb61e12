"""Notebooks are committed without outputs, as valid nbformat v4, with the python3 kernelspec."""
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

COURSE = Path(__file__).resolve().parents[1] / "course"
ALL = sorted(COURSE.glob("*.ipynb")) + sorted((COURSE / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(COURSE)))
def test_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"
    assert "widgets" not in nb.metadata


def test_nbstripout_verify():
    exe = shutil.which("nbstripout") or str(Path(__import__("sys").executable).with_name("nbstripout"))
    if not ALL or not Path(exe).exists():
        pytest.skip("no notebooks or no nbstripout")
    r = subprocess.run([exe, "--verify", *map(str, ALL)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
