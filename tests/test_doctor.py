"""python -m irqlab doctor: every check reports, every problem comes with the exact fix command."""
import subprocess
import sys

from irqlab import doctor
from irqlab.__main__ import main


def test_real_run_returns_checks_with_a_dot_check():
    checks = doctor.run_checks()
    assert isinstance(checks, list) and all(isinstance(c, doctor.Check) for c in checks)
    names = {c.name: c for c in checks}
    assert {"python", "numpy", "dot", "graphviz", "ipywidgets", "widgets lab extension", "jupyterlab",
            "irqlab"} <= set(names)
    assert all(c.fix for c in checks if not c.ok), [c for c in checks if not c.ok and not c.fix]
    assert "irqlab" in names["irqlab"].detail and str(doctor.Path(doctor.__file__).parent) in names["irqlab"].detail


def test_missing_dot_prints_the_fix(monkeypatch, capsys):
    monkeypatch.setattr(doctor.shutil, "which", lambda name, *a, **k: None)
    dot = {c.name: c for c in doctor.run_checks()}["dot"]
    assert not dot.ok and "not on PATH" in dot.detail
    assert doctor.main([]) == 1
    out = capsys.readouterr().out
    assert "✗ dot" in out
    assert "sudo apt-get install graphviz" in out
    assert "conda install -c conda-forge graphviz python-graphviz" in out
    assert "brew install graphviz" in out


def test_broken_dot_is_a_problem(monkeypatch, tmp_path):
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'dot: error while loading shared libraries' >&2\nexit 127\n")
    fake.chmod(0o755)
    monkeypatch.setattr(doctor.shutil, "which", lambda name, *a, **k: str(fake) if name == "dot" else None)
    dot = {c.name: c for c in doctor.run_checks()}["dot"]
    assert not dot.ok and "exited 127" in dot.detail and "apt-get install graphviz" in dot.fix


def test_old_ipywidgets_and_missing_extension(monkeypatch):
    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda d: "7.7.1" if d == "ipywidgets" else real(d))
    monkeypatch.setattr(doctor, "labextension_paths", lambda: [doctor.Path("/nonexistent")])
    checks = {c.name: c for c in doctor.run_checks()}
    assert not checks["ipywidgets"].ok and "too old" in checks["ipywidgets"].detail
    assert "pip install -U ipywidgets" in checks["ipywidgets"].fix
    assert not checks["widgets lab extension"].ok and "labextension install` step is needed" in checks["widgets lab extension"].fix


def test_versions_compare_numerically():
    assert doctor._at_least("1.26.4", (1, 26)) and doctor._at_least("2.0.0rc1", (1, 26))
    assert not doctor._at_least("1.9.0", (1, 26)) and not doctor._at_least(None, (1,))
    assert doctor._at_least("0.21", (0, 20)) and not doctor._at_least("0.19.2", (0, 20))


def test_cli_usage_and_module_entry():
    assert main([]) == 0 and main(["--help"]) == 0 and main(["nope"]) == 2
    r = subprocess.run([sys.executable, "-m", "irqlab"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "usage: python -m irqlab doctor" in r.stdout
    r = subprocess.run([sys.executable, "-m", "irqlab", "doctor"], capture_output=True, text=True, timeout=60)
    assert " dot " in r.stdout and r.returncode in (0, 1)
    assert r.returncode == (0 if "all good" in r.stdout else 1)


def test_this_checkout_is_reported_installed():
    c = {c.name: c for c in doctor.run_checks()}["irqlab"]
    assert c.ok and ("(editable install)" in c.detail or "(installed copy" in c.detail), c.detail


def test_build_residue_is_not_an_installation(monkeypatch, tmp_path):
    # setuptools leaves irqlab.egg-info in the checkout: found on sys.path, but nothing is installed
    egg = tmp_path / "irqlab.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: irqlab\nVersion: 0.1.0\n")
    (egg / "SOURCES.txt").write_text("irqlab/__init__.py\n")
    monkeypatch.setattr(doctor.metadata, "distributions", lambda **kw: [doctor.metadata.PathDistribution(egg)])
    c = doctor._irqlab()
    assert not c.ok and "but not installed (notebooks in course/ will not find it)" in c.detail
    assert c.fix.endswith("install -e '.[course]'")


def test_a_missing_course_package_is_fixed_by_the_extra(monkeypatch):
    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda d: None if d in ("matplotlib", "ipywidgets") else real(d))
    checks = {c.name: c for c in doctor.run_checks()}
    for name in ("matplotlib", "ipywidgets"):
        assert not checks[name].ok and "not installed" in checks[name].detail
        assert checks[name].fix == doctor.extra_fix("course")
    assert doctor.extra_fix("course").endswith("install -e '.[course]'")  # irqlab is imported from a checkout here
