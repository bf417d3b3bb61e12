"""Model time: timers in order, the workqueue's pending bit (kernel/workqueue.c queue_work_on)."""
import pytest

from irqlab.sched import HZ, NSEC_PER_JIFFY, Scheduler, WorkStruct


def test_jiffies_hz250():
    s = Scheduler()
    assert HZ == 250 and NSEC_PER_JIFFY == 4_000_000
    s.run(until=12_000_000)
    assert s.jiffies == 3


def test_queue_work_on_pending_work_is_a_noop():
    s = Scheduler()
    ran = []
    w = WorkStruct(lambda w: ran.append(s.now), name="w")
    assert s.queue_work(w, 100) is True
    assert s.queue_work(w, 5) is False and w.coalesced == 1
    s.run()
    assert ran == [100]
    assert s.queue_work(w, 10) is True  # pending cleared before it ran
    s.run()
    assert ran == [100, 110]


def test_same_instant_runs_in_schedule_order_and_before_until():
    s = Scheduler()
    order = []
    s.call_at(50, order.append, "a")
    s.call_at(50, order.append, "b")
    s.call_at(40, order.append, "c")
    s.run(until=50)
    assert order == ["c", "a", "b"] and s.now == 50


def test_mod_timer_rearms_and_flush():
    s = Scheduler()
    out = []
    w = WorkStruct(lambda w: out.append(s.now))
    s.queue_work(w, 1000)
    assert s.flush_work(w) and out == [0]
    assert not s.flush_work(w)


def test_bad_times():
    s = Scheduler()
    with pytest.raises(TypeError):
        s.run(until=1.5)
    with pytest.raises(ValueError):
        s.run(until=-1)
    s.run(until=10)
    with pytest.raises(ValueError):
        s.run(until=5)


def test_run_to_quiet_refuses_an_endless_model(monkeypatch):
    """Something that re-arms itself forever raises with the advice to bound the run, instead of hanging;
    a bounded run of the same thing is fine."""
    import irqlab.sched as sched
    monkeypatch.setattr(sched, "MAX_RUN_TO_QUIET", 1000)
    s = Scheduler()
    w = WorkStruct(lambda w: s.queue_work(w, 10), name="again")
    s.queue_work(w, 10)
    assert s.run(until=5_000) == 500
    with pytest.raises(RuntimeError, match="run\\(until=...\\)"):
        s.run()
    assert w.runs == 1500


def test_a_scheduler_deep_copies_without_itertools():
    """widgets.journey_steps deep-copies a host: the scheduler's tie-breaker must copy (itertools.count's copy
    support is deprecated in Python 3.13 and removed in 3.14) and keep counting where it was."""
    import copy
    import warnings

    from irqlab.sched import Scheduler

    s = Scheduler()
    s.call_at(10, lambda: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = copy.deepcopy(s)
    assert next(c._seq) == next(s._seq) == 1
