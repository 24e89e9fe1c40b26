"""An issue's sending yields the CPU to the site: in a worker its batches run in a
thread of their own at a lower priority (ISSUE_SEND_NICENESS); run eagerly (the
embedded set-up) they stay in the caller's thread, inside its transaction."""

import sys
import threading

import pytest

from subscriptions import tasks
from subscriptions.issues.delivery import Outcome
from subscriptions.platform import priority

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="per-thread priority is Linux's")


@linux_only
def test_the_work_runs_in_another_thread_at_a_lower_priority():
    before = priority.own_niceness()
    ran_in: list[int] = []

    def work() -> int:
        ran_in.append(threading.get_ident())
        return priority.own_niceness()

    assert priority.run_yielding(work, niceness=3) == min(before + 3, 19)
    assert ran_in != [threading.get_ident()]
    assert priority.own_niceness() == before  # the caller's thread is as it was


def test_without_niceness_the_work_runs_here():
    assert priority.run_yielding(threading.get_ident, niceness=0) == threading.get_ident()


def test_what_the_work_raises_reaches_the_caller():
    def work() -> None:
        raise LookupError("from the yielding thread")

    with pytest.raises(LookupError, match="from the yielding thread"):
        priority.run_yielding(work, niceness=2)


@pytest.mark.parametrize(("eager", "expected"), [(False, 7), (True, 0)])
def test_the_send_task_yields_in_a_worker_and_not_when_eager(
    settings, monkeypatch, eager, expected
):
    settings.ISSUE_SEND_NICENESS = 7
    asked: list[int] = []

    def run_yielding(work, *, niceness):
        asked.append(niceness)
        return Outcome()

    monkeypatch.setattr(tasks, "run_yielding", run_yielding)
    if eager:
        tasks.send_issue.apply(args=(1,))
    else:
        tasks.send_issue(1)  # as a worker calls it

    assert asked == [expected]
