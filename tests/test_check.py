"""The exercise checks: expected answers come from the model, right answers pass in every accepted form, wrong
ones get a hint that does not give the answer away, nothing raises; and every exercise is in the course."""
import errno
import json
import re
from pathlib import Path

import pytest

from irqlab import check

COURSE = Path(__file__).resolve().parents[1] / "course"

#: what the model says today: a drift here means the model changed (then update the notebooks' prose too)
KNOWN = {
    "01-first-kvm-function": "irqfd_wakeup", "01-nic-irq": 27, "01-nic-reaches-kvm": False,
    "02-shared-no-dev-id": errno.EINVAL, "02-oneshot-other-order": 0, "02-irqfd-second-vm": errno.EBUSY,
    "02-msix-rows": 3,
    "03-unhandled-after-three": 3, "03-unhandled-aged": 1, "03-edge-replays": 1, "03-level-replay": "unmask_irq",
    "04-semaphore-reads": 3, "04-write-past-max": errno.EAGAIN, "04-saturated-poll": 0x9,
    "04-count-after-irqfd": 0, "04-work-coalesced": 1,
    "05-dest-vector": (3, 0xB1), "05-dest-mode": "logical", "05-queue3-vcpu": 1, "05-ppr": 0x70,
    "05-exits-per-interrupt": 2,
    "06-masked-outcome": "masked", "06-masked-ns": 4_000 + 1_167 + 2_000, "06-non-pci23": errno.EBUSY,
    "07-disable-index": 99_999, "07-slow-glitches": 0, "07-storm-kstat": 100_000,
    "08-not-postable": "injected", "08-posted-vfio-row": 0, "08-halted-row": "PIW",
    "09-vfio-rows": 3, "09-pin-total": 12, "09-busiest-cpu": "CPU3",
}


def test_every_exercise_has_a_known_answer():
    assert set(KNOWN) == set(check.exercises())


@pytest.mark.parametrize("key", list(KNOWN))
def test_expected_answer_comes_from_the_model(key):
    assert check.expected(key) == KNOWN[key]


def _wrong(value):
    """A plausible wrong answer of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, tuple):
        return (value[0], value[1] + 1)
    if value.startswith("CPU"):
        return "CPU0"
    return value + "_x"


@pytest.mark.parametrize("key", list(KNOWN))
def test_right_passes_wrong_fails_with_a_hint_that_keeps_the_secret(key, capsys):
    want = check.expected(key)
    assert check.ex(key, want) is True
    assert "✓" in capsys.readouterr().out
    assert check.ex(key, _wrong(want)) is False
    out = capsys.readouterr().out
    assert "✗" in out and "Hint" in out
    hint = out.split("Hint:", 1)[1]
    if isinstance(want, str) and len(want) > 3 and key != "05-dest-mode":  # that hint names both choices
        assert want.lower() not in hint.lower(), f"the hint of {key} gives the answer away"
    if key.startswith(("02-", "04-write", "06-non")) and want:
        assert errno.errorcode[want] not in hint, f"the hint of {key} names the errno"


@pytest.mark.parametrize("key", list(KNOWN))
def test_placeholder_is_reported_not_raised(key, capsys):
    assert check.ex(key, ...) is False
    out = capsys.readouterr().out
    assert "replace the ..." in out and "Hint" in out


def test_accepted_forms():
    assert check.ex("02-shared-no-dev-id", "EINVAL")
    assert check.ex("02-shared-no-dev-id", "-EINVAL")
    assert check.ex("02-shared-no-dev-id", -errno.EINVAL)
    assert check.ex("02-oneshot-other-order", 0)
    assert check.ex("05-ppr", "0x70") and check.ex("05-ppr", 112)
    assert check.ex("05-dest-vector", [3, "0xb1"])
    assert check.ex("01-first-kvm-function", " irqfd_wakeup() ")
    assert check.ex("01-nic-reaches-kvm", "no")
    assert check.ex("09-busiest-cpu", 3) and check.ex("09-busiest-cpu", "cpu3")
    assert check.ex("08-halted-row", "piw")


def test_wrong_kind_says_what_kind_is_wanted(capsys):
    assert not check.ex("02-irqfd-second-vm", "busy")
    out = capsys.readouterr().out
    assert "errno" in out and "✗" in out
    assert not check.ex("05-ppr", "eighty")
    assert "number" in capsys.readouterr().out
    assert not check.ex("05-dest-vector", 3)
    assert "pair" in capsys.readouterr().out
    assert not check.ex("01-nic-reaches-kvm", 2)
    assert "True or False" in capsys.readouterr().out
    assert not check.ex("05-ppr", True)  # a bool is not a number


def test_unknown_exercise_and_hint(capsys):
    assert check.ex("nope", 1) is False
    assert "no exercise" in capsys.readouterr().out
    assert check.hint("05-ppr") and "PPR" in capsys.readouterr().out
    assert check.q is check.ex
    with pytest.raises(KeyError):
        check.expected("nope")


def test_a_model_failure_is_reported_not_raised(monkeypatch, capsys):
    ex = check.Exercise("99-broken", lambda: 1 / 0, "int", "none")
    monkeypatch.setitem(check.EXERCISES, "99-broken", ex)
    assert check.ex("99-broken", 1) is False
    assert "could not compute" in capsys.readouterr().out


def _cells(path):
    return [("".join(c["source"]) if isinstance(c["source"], list) else c["source"], c["cell_type"])
            for c in json.loads(path.read_text())["cells"]]


def test_every_exercise_is_in_the_course_once_with_a_placeholder_and_a_solution():
    seen = {}
    for nb in sorted(COURSE.glob("[0-9][0-9]-*.ipynb")):
        sol = COURSE / "solutions" / nb.name
        assert sol.exists(), f"no worked solution for {nb.name}"
        course_cells, sol_cells = _cells(nb), _cells(sol)
        assert len(course_cells) == len(sol_cells), f"{nb.name} and its solution have different cells"
        for (src, kind), (sol_src, _) in zip(course_cells, sol_cells):
            m = re.search(r"check\.ex\('([^']+)', answer\)", src)
            if kind != "code" or not m:
                assert src == sol_src or kind == "markdown", f"{nb.name}: a non-exercise cell differs"
                continue
            key = m.group(1)
            assert key not in seen, f"{key} appears in {seen.get(key)} and {nb.name}"
            seen[key] = nb.name
            assert key.split("-")[0] == nb.name.split("-")[0], f"{key} lives in {nb.name}"
            assert src.startswith("answer = ...  # your answer"), f"{nb.name}: {key} has no placeholder"
            assert "answer = ..." not in sol_src, f"solutions/{nb.name}: {key} is not solved"
    assert set(seen) == set(check.exercises())
