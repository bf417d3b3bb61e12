"""The exercise checks (irqlab/check.py): expected answers come from the model; before an attempt only the kind of
answer is named; hints escalate over distinct wrong answers and never give the answer away; answers are echoed
as typed; a %%reveal cell runs only after an answer; nothing raises; and every exercise is in the course."""
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
    "03-msix-hwirq": 3, "03-thread-verdict": 1,
    "03-unhandled-after-three": 3,
    "03-unhandled-aged": 1, "03-edge-replays": 1, "03-level-replay": "unmask_irq",
    "04-semaphore-reads": 3, "04-write-past-max": errno.EAGAIN, "04-saturated-poll": 0x9,
    "04-count-after-irqfd": 0, "04-why-drain": "b", "04-why-atomic": "b", "04-work-coalesced": 1,
    "05-dest-vector": (3, 0xB1), "05-dest-mode": "logical", "05-queue3-vcpu": 1, "05-ppr": 0x70,
    "05-exits-per-interrupt": 2,
    "06-disk-kvm-functions": 5, "06-why-exit": "b", "06-res-cpu": "CPU1", "06-why-no-ipi": "b",
    "06-busiest-cpu": "CPU1", "06-kick-exits": (10, 0), "06-posted-kvm-functions": 0,
    # 07-masked-ns: inject work + kick + the guest's 10 µs handler; the unmask is in the EOI exit, at once
    "07-masked-outcome": "masked", "07-masked-ns": 4_000 + 1_167 + 10_000, "07-why-mask": "b",
    "07-non-pci23": errno.EBUSY,
    # 08-disable-index: CPU0 takes one glitch per host_irq_ns, the rest are gone under the pin's remote IRR
    "08-stuck-kstat": 100_000, "08-disable-index": 249_794, "08-slow-glitches": 0, "08-storm-kstat": 100_000,
    "09-not-postable": "injected", "09-posted-vfio-row": 0, "09-halted-row": "PIW",
    "10-vfio-rows": 3, "10-pin-total": 12, "10-busiest-cpu": "CPU3",
}


def _flat(text):
    """Output as one line: the checks wrap long lines for JupyterLab."""
    return " ".join(text.split())


@pytest.fixture(autouse=True)
def fresh_attempts():
    check.reset()
    yield
    check.reset()


def test_every_exercise_has_a_known_answer():
    assert set(KNOWN) == set(check.exercises())


@pytest.mark.parametrize("key", list(KNOWN))
def test_expected_answer_comes_from_the_model(key):
    assert check.expected(key) == KNOWN[key]


def _wrong(value, n=1):
    """The n-th plausible wrong answer of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + n
    if isinstance(value, tuple):
        return (value[0], value[1] + n)
    if value.startswith("CPU"):
        return f"CPU{int(value[3:]) + n + 4}"
    if len(value) == 1:  # a choice letter
        return "abcd"[("abcd".index(value) + n) % 4]
    return value + "_x" * n


@pytest.mark.parametrize("key", list(KNOWN))
def test_no_hint_gives_the_answer_away(key):
    want = check.expected(key)
    e = check.EXERCISES[key]
    assert 2 <= len(e.hints) <= 3, f"{key}: give two or three hints, from a nudge to the rule"
    for h in e.hints:
        if isinstance(want, str) and len(want) > 3 and key != "05-dest-mode":  # that hint names the bits
            assert want.lower() not in h.lower(), f"a hint of {key} gives the answer away: {h}"
        if e.kind == "errno" and want:
            assert errno.errorcode[want] not in h, f"a hint of {key} names the errno: {h}"
        if e.kind == "choice":
            assert f"'{want}'" not in h and f"({want})" not in h, f"a hint of {key} names the choice: {h}"


@pytest.mark.parametrize("key", list(KNOWN))
def test_before_an_attempt_only_the_kind_of_answer_is_named(key, capsys):
    assert check.ex(key, ...) is False
    out = _flat(capsys.readouterr().out)
    assert "replace the ..." in out
    assert "Hint" not in out and not any(_flat(h) in out for h in check.EXERCISES[key].hints)
    assert not check.answered(key)


@pytest.mark.parametrize("key", list(KNOWN))
def test_right_passes_and_wrong_answers_escalate_the_hints(key, capsys):
    e = check.EXERCISES[key]
    want = check.expected(key)
    assert check.ex(key, _wrong(want, 1)) is False
    out = _flat(capsys.readouterr().out)
    assert "✗" in out and f"Hint 1/{len(e.hints)}" in out and _flat(e.hints[0]) in out
    assert check.answered(key), "a wrong answer is still an answer: the reveal may run"
    assert check.ex(key, _wrong(want, 1)) is False  # the same wrong answer: the same hint, not the next
    out = _flat(capsys.readouterr().out)
    assert "again" in out and _flat(e.hints[0]) in out and "Hint 2/" not in out
    if isinstance(want, bool):  # only one wrong answer exists: ask for the next hint instead
        check.hint(key)
        check.ex(key, _wrong(want, 1))
        assert _flat(e.hints[1]) in _flat(capsys.readouterr().out)
    else:
        assert check.ex(key, _wrong(want, 2)) is False
        out = _flat(capsys.readouterr().out)
        assert f"Hint 2/{len(e.hints)}" in out and _flat(e.hints[1]) in out
        for n in range(3, len(e.hints) + 2):
            check.ex(key, _wrong(want, n))
        out = _flat(capsys.readouterr().out)
        assert "No more hints" in out and f"solutions/{e.notebook}" in out
    assert (COURSE / "solutions" / e.notebook).exists()
    assert check.ex(key, want) is True
    out = _flat(capsys.readouterr().out)
    assert out.startswith(f"✓ {key}: right")
    if e.explain:
        assert _flat(e.explain) in out


def test_hint_on_request_shows_the_next_one_and_stops_at_the_last(capsys):
    e = check.EXERCISES["05-ppr"]
    assert check.hint("05-ppr") == e.hints[0]
    assert check.hint("05-ppr") == e.hints[1]
    assert check.hint("05-ppr") == e.hints[1]
    check.ex("05-ppr", 1)  # a wrong answer after every hint was shown points to the solution
    assert "No more hints" in _flat(capsys.readouterr().out).split("Hint 2/2")[-1]


def test_answers_are_echoed_as_typed_or_in_the_exercises_base(capsys):
    assert check._typed("answer = 0x70  # your answer\ncheck.ex('05-ppr', answer)") == "0x70"
    assert check._typed("answer = 'EBUSY'   # '#' in a comment\n") == "'EBUSY'"
    assert check._typed("answer = '#b'") == "'#b'"
    assert check._typed("answer = (3, 0xb1)") == "(3, 0xb1)"
    assert check._typed("answer = errno.EBUSY") == "errno.EBUSY"
    assert check._typed("answer = -EBUSY") == "-EBUSY"
    assert check._typed("try:\n    answer = 0\nexcept KernelError as e:\n    answer = e.errname") is None
    assert check._typed("answer = a.ppr") is None and check._typed("answer = x") is None
    assert check._typed("answer == 3") is None and check._typed(None) is None
    check.ex("05-ppr", 0x60)  # not in IPython: a computed value is shown in the exercise's base
    assert "0x60 is not it" in capsys.readouterr().out
    check.ex("05-dest-vector", (3, 0xB0))
    assert "(3, 0xb0) is not it" in capsys.readouterr().out
    check.ex("04-semaphore-reads", 4)
    assert "4 is not it" in capsys.readouterr().out


def test_accepted_forms():
    assert check.ex("02-shared-no-dev-id", "EINVAL")
    assert check.ex("02-shared-no-dev-id", "-EINVAL")
    assert check.ex("02-shared-no-dev-id", -errno.EINVAL)
    assert check.ex("02-oneshot-other-order", 0)
    assert check.ex("05-ppr", "0x70") and check.ex("05-ppr", 112)
    assert check.ex("05-dest-vector", [3, "0xb1"])
    assert check.ex("01-first-kvm-function", " irqfd_wakeup() ")
    assert check.ex("01-nic-reaches-kvm", "no")
    assert check.ex("10-busiest-cpu", 3) and check.ex("10-busiest-cpu", "cpu3")
    assert check.ex("09-halted-row", "piw")
    assert check.ex("04-why-drain", "B") and check.ex("04-why-drain", "(b)")


def test_wrong_kind_says_what_kind_is_wanted_and_is_not_an_attempt(capsys):
    assert not check.ex("02-irqfd-second-vm", "busy")
    out = _flat(capsys.readouterr().out)
    assert "errno" in out and "✗" in out and "Hint" not in out
    assert not check.answered("02-irqfd-second-vm")
    assert not check.ex("05-ppr", "eighty")
    assert "number" in capsys.readouterr().out
    assert not check.ex("05-dest-vector", 3)
    assert "pair" in capsys.readouterr().out
    assert not check.ex("01-nic-reaches-kvm", 2)
    assert "True or False" in capsys.readouterr().out
    assert not check.ex("05-ppr", True)  # a bool is not a number
    assert not check.ex("04-why-drain", "e") and not check.ex("04-why-drain", 2)
    assert "'a', 'b', 'c' or 'd'" in capsys.readouterr().out
    assert not check.answered("04-why-drain")


def test_unknown_exercise_and_hint(capsys):
    assert check.ex("nope", 1) is False
    assert "no exercise" in capsys.readouterr().out
    assert check.hint("nope") == "" and "no exercise" in capsys.readouterr().out
    assert check.q is check.ex
    with pytest.raises(KeyError):
        check.expected("nope")


def test_a_model_failure_is_reported_not_raised(monkeypatch, capsys):
    ex = check.Exercise("99-broken", lambda: 1 / 0, "int", ("one", "two"))
    monkeypatch.setitem(check.EXERCISES, "99-broken", ex)
    assert check.ex("99-broken", 1) is False
    assert "could not compute" in capsys.readouterr().out


# ------------------------------------------------------------------------------- in a real IPython shell

@pytest.fixture
def ipython():
    shell_mod = pytest.importorskip("IPython.core.interactiveshell")
    ip = shell_mod.InteractiveShell.instance()
    check.load_ipython_extension(ip)
    ip.run_cell("from irqlab import check", store_history=True)
    yield ip
    shell_mod.InteractiveShell.clear_instance()


def test_in_ipython_a_hex_answer_is_echoed_as_typed(ipython, capsys):
    ipython.run_cell("answer = 0x60  # your answer\ncheck.ex('05-ppr', answer);", store_history=True)
    assert "✗ 05-ppr: 0x60 is not it" in capsys.readouterr().out
    ipython.run_cell("answer = 0x70\ncheck.ex('05-ppr', answer);", store_history=True)
    assert "✓ 05-ppr: right — 0x70." in capsys.readouterr().out


def test_reveal_runs_only_after_an_answer_and_never_raises(ipython, capsys):
    r = ipython.run_cell("%%reveal 04-count-after-irqfd\nshown = 'revealed: 0'\nprint(shown)", store_history=True)
    out = _flat(capsys.readouterr().out)
    assert r.error_in_exec is None and r.error_before_exec is None
    assert "shows the answer" in out and "04-count-after-irqfd" in out and "revealed: 0" not in out
    assert "shown" not in ipython.user_ns
    ipython.run_cell("answer = 3\ncheck.ex('04-count-after-irqfd', answer);", store_history=True)  # a wrong guess
    capsys.readouterr()
    ipython.run_cell("%%reveal 04-count-after-irqfd\nshown = 'revealed: 0'\nprint(shown)", store_history=True)
    assert "revealed: 0" in capsys.readouterr().out and ipython.user_ns["shown"] == "revealed: 0"
    ipython.run_cell("%%reveal no-such-key\nprint('x')", store_history=True)
    assert "no exercise" in capsys.readouterr().out


# ------------------------------------------------------------------------------- the kernel's reasons

def test_why_drain_a_count_left_on_the_eventfd_would_be_injected_again():
    """04-why-drain (b): after irqfd_wakeup the eventfd no longer polls EPOLLIN; an eventfd that still has a count
    makes a new KVM_IRQFD queue an injection at once (virt/kvm/eventfd.c kvm_irqfd_assign: events & EPOLLIN)."""
    from irqlab import Eventfd, scenarios
    from irqlab.eventfd import EPOLLIN

    h = scenarios.switchboard()
    efd = h.scenario.eventfds[0]
    h.raise_msi(check.GPU, 0)
    assert not efd.poll() & EPOLLIN and efd.count == 0
    vm = h.scenario.vm
    vm.ioapic.write_redirtbl(11, vector=0x35, trigger_level=False)
    left = Eventfd(name="left-over")
    left.signal()  # a count nobody drained
    vm.kvm_irqfd(left, 11)
    h.run()
    assert vm.vcpus[0].delivered[0x35] == 1, "the old count was injected as a new interrupt"


def test_why_atomic_irqfd_wakeup_runs_inside_vfios_hard_irq_handler():
    """04-why-atomic (b): irqfd_wakeup is called from eventfd_signal inside vfio_msihandler, at the interrupt's
    instant; a route the fast path cannot take is handed to a kworker (schedule_work) and runs later."""
    from irqlab import scenarios

    h = scenarios.switchboard()
    j = h.raise_msi(check.GPU, 0)
    h.run()
    fns = j.functions()
    i = fns.index("irqfd_wakeup")
    assert fns.index("vfio_msihandler") < fns.index("eventfd_signal") < i
    assert all(hop.t_ns == j.t_raise for hop in j.hops[: i + 1])
    vm = h.scenario.vm
    vm.ioapic.write_redirtbl(10, vector=0x33, trigger_level=False)
    from irqlab import Eventfd

    e = Eventfd(name="legacy")
    vm.kvm_irqfd(e, 10)
    ev_before = vm.vcpus[0].delivered[0x33]
    e.signal()
    assert vm.vcpus[0].delivered[0x33] == ev_before, "an IOAPIC route is not injected inside the wake-up"
    h.run()
    assert vm.vcpus[0].delivered[0x33] == ev_before + 1


def test_why_mask_the_card_drops_its_line_in_vfios_handler():
    """07-why-mask (b): vfio_intx_handler sets INTx Disable in the hard-IRQ handler, so the still-unserviced card
    no longer holds the shared level line up, and eth0's interrupts keep being served meanwhile."""
    from irqlab import scenarios

    h = scenarios.shared_intx()
    card = h.pci_dev(check.LEGACY)
    j = h.raise_intx(check.LEGACY)
    assert card.disintx and card.intx_status_event is not None, "masked at the device, still not serviced"
    assert not h.genirq.asserting_devices(h.irq_to_desc(16)), "the card no longer holds line 16 up"
    eth0 = h.raise_intx(check.ETH0, at=h.now + h.timing.host_irq_ns + 100)  # once CPU0 is out of the card's IRQ
    assert eth0.outcome == "handled_host" and card.disintx, "eth0 is served while the card waits for its guest"
    h.run()
    assert j.outcome == "injected" and not card.disintx


def test_why_exit_the_exit_hands_the_vector_to_the_hosts_idt_and_looks_up_nothing():
    """06-why-exit (b): a host device's interrupt that arrives under a vCPU exits; KVM's hops of that exit come
    before common_interrupt and after the host driver, they change nothing of KVM's routing (no irqfd, eventfd,
    route) and the interrupt ends at the host driver; on a CPU that runs no vCPU the same interrupt has no KVM hop."""
    from irqlab import scenarios

    h = scenarios.switchboard()
    irq = h.pci_dev(check.DISK).vectors[0].irq
    h.write_proc_irq(irq, "smp_affinity_list", "1")
    j = h.raise_msi(check.DISK, 0)
    h.run()
    fns = j.functions()
    kvm = [x for x in j.hops if x.file.startswith(check.KVM_FILES)]
    assert [x.function for x in kvm] == ["vmx_handle_exit_irqoff", "handle_external_interrupt_irqoff",
                                         "kvm_before_interrupt", "kvm_after_interrupt", "handle_external_interrupt"]
    assert fns.index("kvm_before_interrupt") < fns.index("common_interrupt") < fns.index("kvm_after_interrupt")
    assert not any(c.target.kind in ("irqfd", "eventfd") for x in j.hops for c in x.changes)
    assert j.outcome == "handled_host" and h.scenario.vm.vcpus[0].exits["EXTERNAL_INTERRUPT"] == 1
    h.write_proc_irq(irq, "smp_affinity_list", "0,3")   # off the vCPUs' CPUs: no exit, no KVM hop at all
    j2 = h.raise_msi(check.DISK, 0, at=h.now + 10_000)
    h.run()
    assert not [x for x in j2.hops if x.file.startswith(check.KVM_FILES)]
    assert h.scenario.vm.vcpus[0].exits["EXTERNAL_INTERRUPT"] == 1


def test_why_no_ipi_the_kick_finds_the_vcpu_out_of_guest_mode_on_its_own_cpu():
    """06-why-no-ipi (b): with the GPU's vector on vcpu0's CPU the exit for that vector takes vcpu0 out of guest
    mode before irqfd_wakeup runs there: kvm_vcpu_kick sends no IPI (RES stays 0) and the vector is injected at the
    re-entry, one ipi_ns sooner than from another CPU."""
    from irqlab import scenarios

    lat = {}
    for cpu in ("3", "1"):
        h = scenarios.switchboard()
        h.write_proc_irq(h.pci_dev(check.GPU).vectors[0].irq, "smp_affinity_list", cpu)
        j = h.raise_msi(check.GPU, 0)
        h.run()
        fns = j.functions()
        assert j.outcome == "injected" and "kvm_vcpu_kick" in fns
        lat[cpu] = j.latency_ns
        if cpu == "1":
            assert "native_smp_send_reschedule" not in fns and sum(h.arch_counts["RES"]) == 0
            assert fns.index("kvm_before_interrupt") < fns.index("irqfd_wakeup") < fns.index("kvm_after_interrupt")
        else:
            assert "native_smp_send_reschedule" in fns and h.arch_counts["RES"][1] == 1
    assert lat["3"] - lat["1"] == h.timing.ipi_ns


# ------------------------------------------------------------------------------- in the course

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
            m = re.search(r"check\.ex\(['\"]([^'\"]+)['\"], answer\)", src)
            if kind != "code" or not m:
                assert src == sol_src or kind == "markdown", f"{nb.name}: a non-exercise cell differs"
                continue
            key = m.group(1)
            assert key not in seen, f"{key} appears in {seen.get(key)} and {nb.name}"
            seen[key] = nb.name
            assert key.split("-")[0] == nb.name.split("-")[0], f"{key} lives in {nb.name}"
            assert src.startswith("answer = ...  # your answer"), f"{nb.name}: {key} has no placeholder"
            assert "answer = ..." not in sol_src, f"solutions/{nb.name}: {key} is not solved"
            assert check.EXERCISES[key].notebook == nb.name
    assert set(seen) == set(check.exercises())


def test_multiple_choice_questions_list_their_choices_in_the_notebook():
    for key, e in check.EXERCISES.items():
        if e.kind != "choice":
            continue
        text = (COURSE / e.notebook).read_text()
        for letter, choice in e.choices.items():
            assert f"**({letter})**" in text, f"{e.notebook} does not list choice ({letter}) of {key}"
            assert json.dumps(choice)[1:-1][:60] in text, f"{e.notebook}: choice ({letter}) of {key} differs"


def test_every_prediction_is_revealed_only_by_a_reveal_cell():
    """A question that asks for a prediction is followed by its exercise cell and then a %%reveal cell."""
    for nb in sorted(COURSE.glob("[0-9][0-9]-*.ipynb")):
        cells = _cells(nb)
        for i, (src, kind) in enumerate(cells):
            m = re.match(r"\*\*Exercise `([^`]+)`\.\*\* Predict", src) if kind == "markdown" else None
            if not m:
                continue
            key = m.group(1)
            assert f"check.ex({key!r}, answer)" in cells[i + 1][0].replace('"', "'"), f"{nb.name}: {key}"
            nxt = cells[i + 2][0]
            assert nxt.startswith(f"%%reveal {key}\n"), f"{nb.name}: the cell after {key} does not wait for it"


def test_no_output_line_is_wider_than_jupyterlab_shows_it(capsys):
    """JupyterLab breaks an output line wider than the cell anywhere, even mid-word: the checks wrap at 100."""
    for key, e in check.EXERCISES.items():
        check.ex(key, ...)
        for n in range(1, len(e.hints) + 2):
            check.ex(key, _wrong(check.expected(key), n))
        check.ex(key, check.expected(key))
        check.hint(key)
    check.reset("08-stuck-kstat")
    check._reveal("08-stuck-kstat", "x = 1")
    lines = capsys.readouterr().out.splitlines()
    assert lines and max(map(len, lines)) <= 100, max(lines, key=len)  # ~110 monospace columns at 1400 px
