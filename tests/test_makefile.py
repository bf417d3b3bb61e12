"""The Makefile on a fresh machine: system packages, the venv made whole or not at all, quiet second runs.

Each test runs the real Makefile in a sandbox whose PATH holds only a few real tools and fakes of
python3, apt-get, sudo, id, dot and dpkg. The fakes behave as Debian's do where it matters (`python3 -m venv`
without python3-venv leaves a venv with no pip and exits 1; apt-get writes debconf noise on stderr; sudo -n
fails without NOPASSWD) and record what they were asked to do, so that each rule of the issue is checked
without root, network or a real apt. `make lab` is also run for real, with this venv's JupyterLab.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
REAL_TOOLS = ["rm", "mkdir", "mktemp", "cat", "date", "tail", "wc", "touch", "env", "find", "sed", "cp", "chmod"]
pytestmark = pytest.mark.skipif(MAKE is None, reason="needs GNU make")

FAKE_PYTHON = r"""#!/bin/bash
# a system python3: ensurepip importable only once python3-venv is "installed"
S=__STATE__
if [ "$1" = -c ]; then [ -e $S/python3-venv ] && exit 0; echo "No module named 'ensurepip'" >&2; exit 1; fi
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"; sed "s|__VENV__|$3|" $S/venv-python > "$3/bin/python"; chmod +x "$3/bin/python"
  cp $S/venv-jupyter "$3/bin/jupyter"; chmod +x "$3/bin/jupyter"
  if [ ! -e $S/python3-venv ] || [ -e $S/venv-breaks ]; then
    echo "The virtual environment was not created successfully because ensurepip is not available." >&2; exit 1
  fi
  touch "$3/pip"; exit 0
fi
exit 2
"""

FAKE_VENV_PYTHON = r"""#!/bin/bash
S=__STATE__
V=__VENV__
if [ "$1 $2" = "-m pip" ]; then
  [ -e $V/pip ] || { echo "$V/bin/python: No module named pip" >&2; exit 1; }
  shift 2; echo "pip $*" >> $S/pip.log
  case "$1" in
    --version) echo "pip 25.0 from $V";;
    list) printf 'Package Version\n------- -------\na 1\nb 2\nc 3\n';;
    install) echo "Collecting numpy (noise pip -q would not print)" >&2
             if [ -e $S/pip-fails ]; then echo "ERROR: No matching distribution found for jupyterlab>=4.2" >&2; exit 1; fi;;
  esac
  exit 0
fi
if [ "$1 $2" = "-m ipykernel" ]; then echo "Installed kernelspec python3 in $V/share/jupyter/kernels/python3"; exit 0; fi
if [ "$1 $2" = "-m pytest" ]; then shift 2; echo "pytest $* IRQLAB_FUZZ_SECONDS=${IRQLAB_FUZZ_SECONDS-unset}"; exit 0; fi
exit 2
"""

FAKE_JUPYTER = r"""#!/bin/bash
echo "jupyter $*" >> __STATE__/jupyter.log
[ "$1" = labextension ] && echo "Disabling: @jupyterlab/apputils-extension:announcements" >&2
exit 0
"""

FAKE_APT = r"""#!/bin/bash
S=__STATE__
echo "uid=$(id -u) DEBIAN_FRONTEND=${DEBIAN_FRONTEND-} apt-get $*" >> $S/apt.log
echo "debconf: delaying package configuration, since apt-utils is not installed" >&2
[ "$(id -u)" = 0 ] || { echo "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)" >&2; exit 100; }
[ -e $S/apt-fails ] && { echo "E: Unable to locate package chromium" >&2; exit 100; }
if [ "$1" = install ]; then
  for p in "$@"; do
    case "$p" in
      python3-venv) touch $S/python3-venv;;
      graphviz) printf '#!/bin/sh\necho "dot - graphviz version 2.43.0 (0)" >&2\n' > $S/bin/dot; chmod +x $S/bin/dot;;
      chromium) printf '#!/bin/sh\n' > $S/chromium; chmod +x $S/chromium;;
      libatomic1) touch $S/libatomic.so.1;;
    esac
  done
  echo "Created symlink /etc/systemd/system/multi-user.target.wants/foo.service" >&2
fi
exit 0
"""

FAKE_SUDO = r"""#!/bin/bash
S=__STATE__
[ "$1" = -n ] && shift
[ -e $S/sudo-nopasswd ] || { echo "sudo: a password is required" >&2; exit 1; }
[ "$1" = true ] && exit 0
echo "sudo $*" >> $S/sudo.log
FAKE_UID=0 exec "$@"
"""

FAKE_ID = r"""#!/bin/bash
[ "$1" = -u ] && { echo "${FAKE_UID:-0}"; exit 0; }
exit 1
"""

FAKE_DPKG = "#!/bin/sh\nexit 1\n"


class Sandbox:
    """A copy of the Makefile and pyproject.toml with fakes on PATH; ``state`` says what is installed."""

    def __init__(self, tmp: Path):
        self.dir = tmp / "project"
        self.state = tmp / "state"
        self.bin = self.state / "bin"
        self.bin.mkdir(parents=True)
        self.dir.mkdir()
        for f in ("Makefile", "pyproject.toml"):
            shutil.copy(ROOT / f, self.dir / f)
        for tool in REAL_TOOLS:
            real = shutil.which(tool)
            assert real, tool
            (self.bin / tool).symlink_to(real)
        for name, text in [("python3", FAKE_PYTHON), ("apt-get", FAKE_APT), ("sudo", FAKE_SUDO), ("id", FAKE_ID),
                           ("dpkg", FAKE_DPKG), ("../venv-python", FAKE_VENV_PYTHON),
                           ("../venv-jupyter", FAKE_JUPYTER)]:
            p = self.bin / name
            p.write_text(text.replace("__STATE__", str(self.state)))
            p.chmod(0o755)

    def have(self, *what: str) -> None:
        """Mark system packages as installed: python3-venv, graphviz, chromium, libatomic1, sudo-nopasswd."""
        for w in what:
            if w == "graphviz":
                (self.bin / "dot").write_text("#!/bin/sh\n")
                (self.bin / "dot").chmod(0o755)
            elif w == "chromium":
                (self.state / "chromium").write_text("#!/bin/sh\n")
                (self.state / "chromium").chmod(0o755)
            elif w == "libatomic1":
                (self.state / "libatomic.so.1").touch()
            else:
                (self.state / w).touch()

    def lose(self, *what: str) -> None:
        for w in what:
            (self.state / w).unlink()

    def make(self, *args: str, uid: int = 0, env: dict | None = None) -> subprocess.CompletedProcess:
        e = {"PATH": str(self.bin), "FAKE_UID": str(uid), "HOME": str(self.state), **(env or {})}
        return subprocess.run([MAKE, "--no-print-directory", *args, f"CHROMIUM={self.state / 'chromium'}",
                               f"LIBATOMIC={self.state / 'libatomic.so.1'}"], cwd=self.dir, env=e,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)

    def log(self, name: str) -> str:
        p = self.state / name
        return p.read_text() if p.exists() else ""

    @property
    def venv(self) -> Path:
        return self.dir / ".venv"


@pytest.fixture
def box(tmp_path):
    return Sandbox(tmp_path)


def out(r: subprocess.CompletedProcess) -> str:
    return r.stdout + r.stderr


def test_everything_there_then_a_second_run_is_silent(box):
    box.have("python3-venv", "graphviz")
    r = box.make("deps")
    assert r.returncode == 0, out(r)
    assert box.log("apt.log") == ""
    # the pip step says what it does, then how it went; pip's own chatter stays in its log
    assert "installing irqlab (editable) with its course and test extras into .venv" in r.stdout
    assert re.search(r"\.venv is ready: 3 packages in \d+ s", r.stdout)
    assert "Collecting" not in out(r) and "kernelspec" not in out(r) and "Disabling" not in out(r)
    assert "install -q -e .[course,test]" in box.log("pip.log")
    assert "labextension disable @jupyterlab/apputils-extension:announcements" in box.log("jupyter.log")
    assert (box.venv / ".stamp-deps").exists()
    again = box.make("deps")
    assert again.returncode == 0 and out(again) == "", out(again)
    assert box.make("venv").stdout == ""


def test_bare_debian_root_installs_python3_venv_and_graphviz_quietly(box):
    r = box.make("deps")
    assert r.returncode == 0, out(r)
    apt = box.log("apt.log").splitlines()
    assert apt == ["uid=0 DEBIAN_FRONTEND= apt-get update -q",
                   "uid=0 DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
                   "python3 python3-venv graphviz"], apt
    assert "installing system packages: python3 python3-venv graphviz (apt-get)" in r.stdout
    # apt's stderr (debconf, systemd symlinks) is kept out of sight when apt succeeds
    assert "debconf" not in out(r) and "Created symlink" not in out(r)
    assert box.make("deps").stdout == ""
    assert len(box.log("apt.log").splitlines()) == 2


def test_make_test_also_needs_chromium_and_libatomic1_but_make_lab_does_not(box):
    box.have("python3-venv", "graphviz")
    assert box.make("deps").returncode == 0
    r = box.make("test")
    assert r.returncode == 0, out(r)
    assert box.log("apt.log").splitlines()[-1].endswith("--no-install-recommends chromium libatomic1")
    assert "pytest -q" in r.stdout
    r = box.make("test")
    assert r.stdout.splitlines() == ["pytest -q IRQLAB_FUZZ_SECONDS=unset"], out(r)


def test_not_root_without_sudo_prints_the_command_to_run_as_root(box):
    (box.bin / "sudo").unlink()
    r = box.make("test", uid=1000)
    assert r.returncode != 0
    cmd = "apt-get update && apt-get install -y --no-install-recommends python3 python3-venv graphviz chromium libatomic1"
    assert "you are not root and there is no sudo: run this as root" in r.stdout
    assert "\n    " + cmd + "\n" in r.stdout, r.stdout
    assert box.log("apt.log") == "" and "lock" not in out(r)
    assert not box.venv.exists()


def test_not_root_sudo_with_a_password_and_no_terminal(box):
    box.have("python3-venv")
    r = box.make("deps", uid=1000)
    assert r.returncode != 0
    assert "sudo needs a password, and there is no terminal to ask for it" in r.stdout
    assert "\n    apt-get update && apt-get install -y --no-install-recommends graphviz\n" in r.stdout
    assert box.log("apt.log") == ""


def test_not_root_with_passwordless_sudo_uses_sudo_n(box):
    box.have("sudo-nopasswd")
    r = box.make("deps", uid=1000)
    assert r.returncode == 0, out(r)
    assert "(apt-get with sudo)" in r.stdout
    assert box.log("sudo.log").splitlines() == [
        "sudo apt-get update -q",
        "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-venv graphviz"]
    assert all(line.startswith("uid=0 ") for line in box.log("apt.log").splitlines())


def test_apt_failure_shows_its_log(box):
    box.have("python3-venv", "apt-fails")
    r = box.make("deps")
    assert r.returncode != 0
    assert "E: Unable to locate package" in r.stdout and "debconf" in r.stdout
    assert "apt-get failed: its output is above" in r.stdout
    assert not box.venv.exists()


def test_a_failed_venv_is_removed_and_the_next_run_starts_clean(box):
    box.have("python3-venv", "graphviz", "venv-breaks")
    r = box.make("deps")
    assert r.returncode != 0
    assert "ensurepip is not available" in r.stdout
    assert "removed the half-made .venv" in r.stdout
    assert not box.venv.exists()
    box.lose("venv-breaks")
    r = box.make("deps")
    assert r.returncode == 0, out(r)
    assert (box.venv / ".stamp-deps").exists() and box.make("deps").stdout == ""


def test_a_venv_with_no_pip_left_by_an_older_make_is_replaced(box):
    # what the issue hit: python3-venv missing, `python3 -m venv` left .venv/bin/python and no pip
    box.have("graphviz")
    (box.venv / "bin").mkdir(parents=True)
    (box.venv / "bin" / "python").write_text((box.state / "venv-python").read_text().replace("__VENV__", str(box.venv)))
    (box.venv / "bin" / "python").chmod(0o755)
    r = box.make("deps")
    assert r.returncode != 0
    assert "No module named pip" in r.stdout and "removed .venv, so that the next make starts clean" in r.stdout
    assert not box.venv.exists()
    r = box.make("deps")
    assert r.returncode == 0, out(r)
    assert "python3 python3-venv" in box.log("apt.log")  # the check found what was missing this time


def test_a_failed_pip_install_removes_the_venv(box):
    box.have("python3-venv", "graphviz", "pip-fails")
    r = box.make("deps")
    assert r.returncode != 0
    assert "No matching distribution found for jupyterlab" in r.stdout
    assert "pip failed (its output is above); removed .venv" in r.stdout
    assert not box.venv.exists()
    box.lose("pip-fails")
    assert box.make("deps").returncode == 0 and box.make("deps").stdout == ""


def test_fuzz_passes_its_time_budget_through(box):
    box.have("python3-venv", "graphviz")
    assert box.make("deps").returncode == 0
    files = "tests/test_twin_fuzz.py tests/test_storm_equivalence.py"
    assert box.make("fuzz").stdout == f"pytest -q {files} IRQLAB_FUZZ_SECONDS=600\n"
    assert box.make("fuzz", "IRQLAB_FUZZ_SECONDS=5").stdout == f"pytest -q {files} IRQLAB_FUZZ_SECONDS=5\n"
    assert box.make("fuzz", env={"IRQLAB_FUZZ_SECONDS": "7"}).stdout == f"pytest -q {files} IRQLAB_FUZZ_SECONDS=7\n"
    assert box.log("apt.log") == ""  # the fuzzer needs no browser


def test_lab_opens_the_course_on_the_chosen_port(box):
    box.have("python3-venv", "graphviz")
    assert box.make("deps").returncode == 0
    for uid, allow in ((0, True), (1000, False)):
        r = box.make("lab", "PORT=8899", uid=uid, env={"CI": "true"})
        assert r.returncode == 0, out(r)
        line = box.log("jupyter.log").splitlines()[-1]
        assert "lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/course/00-index.ipynb" in line
        assert "--ServerApp.port=8899" in line and "--no-browser" in line
        assert ("--allow-root" in line) == allow
    assert box.log("apt.log") == ""  # JupyterLab needs no browser from apt


# --- `make lab` for real: JupyterLab from this venv, in this checkout ---------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes:
    """GET url; Jupyter logs its URL a moment before it accepts connections."""
    for _ in range(100):
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                assert resp.status == 200
                return resp.read()
        except urllib.error.URLError as e:
            if not isinstance(e.reason, ConnectionRefusedError):
                raise
            time.sleep(0.2)
    raise AssertionError(f"nothing listens at {url}")


def _lab(port: int, tmp_path: Path) -> tuple[str, str]:
    """Run `make lab PORT=port` (without its deps step) until it prints the course URL; return (url, output)."""
    if not Path(sys.prefix, "bin", "jupyter").exists():
        pytest.skip("JupyterLab is not installed in this venv (`make test` installs it)")
    env = {**os.environ, "CI": "true", "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "IPYTHONDIR": str(tmp_path / "ipy")}
    p = subprocess.Popen([MAKE, "--no-print-directory", "-o", "deps", "lab", f"PORT={port}", f"VENV={sys.prefix}"],
                         cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"(http://127\.0\.0\.1:\d+/\S+)", line)
            if m:
                url = m.group(1)
                assert b"JupyterLab" in _get(url)
                # the notebook the URL opens is there, under the server's root
                api = url.replace("/lab/tree/course/00-index.ipynb", "/api/contents/course/00-index.ipynb")
                assert b'"name": "00-index.ipynb"' in _get(api).replace(b'":"', b'": "')
                return url, "".join(lines)
        raise AssertionError("make lab printed no URL:\n" + "".join(lines))
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        p.stdout.close()


@pytest.mark.slow
def test_make_lab_prints_the_course_url_and_steps_over_a_busy_port(tmp_path):
    port = _free_port()
    url, _ = _lab(port, tmp_path)
    assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/lab/tree/course/00-index\.ipynb\?token=[0-9a-f]{{16,}}", url), url
    with socket.socket() as busy:  # someone else holds the port: Jupyter takes the next free one and says so
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        url, text = _lab(taken, tmp_path)
    assert f"The port {taken} is already in use" in text
    got = int(re.search(r":(\d+)/", url).group(1))
    assert got != taken and url.startswith(f"http://127.0.0.1:{got}/lab/tree/course/00-index.ipynb?token=")
