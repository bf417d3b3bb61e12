"""The exercise checks: right answers pass, wrong ones get a hint, nothing raises."""
import errno

from irqlab import check


def test_expected_answers_come_from_the_model():
    assert check.expected("01-first-kvm-function") == "irqfd_wakeup"
    assert check.expected("01-disk-outcome") == "handled_host"
    assert check.expected("02-busy-errno") == errno.EBUSY
    assert check.expected("02-shared-no-dev-id") == errno.EINVAL
    assert check.expected("03-unhandled-after-three") == 3
    assert check.expected("04-semaphore-reads") == 3
    assert check.expected("05-ppr") == 0x50
    assert check.expected("07-disable-index") == 99_999
    assert check.expected("08-posted-exits") == 0
    assert check.expected("09-vfio-rows") == 3


def test_right_wrong_and_placeholder(capsys):
    assert check.ex("02-busy-errno", errno.EBUSY) and check.ex("02-busy-errno", "EBUSY")
    assert not check.ex("02-busy-errno", errno.EINVAL)
    out = capsys.readouterr().out
    assert "✓" in out and "✗" in out and "Hint" in out and "16" not in out.split("✗")[1]
    assert not check.ex("05-vector", ...)
    assert "replace the ..." in capsys.readouterr().out
    assert not check.ex("nope", 1)
