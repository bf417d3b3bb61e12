"""python -m irqlab doctor: every problem comes with the exact fix."""
import subprocess
import sys

from irqlab import doctor
from irqlab.__main__ import main


def test_real_run_has_a_dot_check():
    names = {c.name: c for c in doctor.run_checks()}
    assert {"python", "numpy", "dot", "ipywidgets", "jupyterlab", "irqlab"} <= set(names)


def test_missing_dot_prints_the_fix(monkeypatch, capsys):
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    assert doctor.main([]) == 1
    out = capsys.readouterr().out
    assert "✗ dot" in out and "sudo apt-get install graphviz" in out and "conda-forge graphviz" in out


def test_cli_usage_and_module_entry():
    assert main([]) == 0 and main(["nope"]) == 2
    r = subprocess.run([sys.executable, "-m", "irqlab", "doctor"], capture_output=True, text=True, timeout=60)
    assert "dot" in r.stdout and r.returncode in (0, 1)
