"""Milestones of the membership goal: laid out from the goal, each reached and announced
to the editors exactly once, however many members join at the same moment."""

import threading
from datetime import UTC, datetime

import pytest
from django.core import mail
from django.db import connection

from subscriptions import tasks
from subscriptions.membership import goal_counter, members, milestones
from subscriptions.membership.members import PaymentChange
from subscriptions.models import GoalMilestone, Member, MembershipGoal, OutboundEmail

EDITORS = ["desk@example.org", "editor@example.org"]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _editors(settings):
    settings.GOAL_NOTIFY_EMAILS = EDITORS


def join(n: int) -> PaymentChange:
    return PaymentChange(
        event_id=f"evt_{n}",
        event_type="customer.subscription.created",
        occurred_at=T0,
        external_id=f"sub_{n}",
        status=Member.Status.ACTIVE,
    )


def cancel(n: int) -> PaymentChange:
    return PaymentChange(
        event_id=f"evt_cancel_{n}",
        event_type="customer.subscription.deleted",
        occurred_at=T0,
        external_id=f"sub_{n}",
        status=Member.Status.CANCELLED,
    )


def notices() -> list[tuple[int, str]]:
    return sorted(
        OutboundEmail.objects.filter(kind=OutboundEmail.Kind.MILESTONE).values_list(
            "milestone__threshold", "to_email"
        )
    )


@pytest.mark.django_db
def test_milestones_fall_every_step_up_to_the_target_and_at_it() -> None:
    goal = milestones.save_goal(MembershipGoal(target=2_500, milestone_step=1_000))

    assert list(goal.milestones.values_list("threshold", flat=True)) == [1_000, 2_000, 2_500]

    goal.target, goal.milestone_step = 3_000, 1_500
    milestones.save_goal(goal)

    assert list(goal.milestones.values_list("threshold", flat=True)) == [1_500, 3_000]


@pytest.mark.django_db
def test_reaching_a_milestone_tells_each_editor_once(django_capture_on_commit_callbacks) -> None:
    milestones.save_goal(
        MembershipGoal(headline="Help us reach 5 members", target=5, milestone_step=2)
    )

    for n in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            members.apply_payment_change(join(n))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.reconcile_member_count()["members"] == 5

    assert notices() == [(t, e) for t in (2, 4, 5) for e in EDITORS]
    assert len(mail.outbox) == 6
    assert sorted(m.to[0] for m in mail.outbox) == sorted(EDITORS * 3)
    last = [m for m in mail.outbox if "5 members reached" in m.subject]
    assert len(last) == 2
    assert "That is the target: the goal is met." in last[0].body
    assert "List-Unsubscribe" not in last[0].extra_headers


@pytest.mark.django_db
def test_a_milestone_is_not_announced_again_when_the_count_dips_and_returns(
    django_capture_on_commit_callbacks,
) -> None:
    milestones.save_goal(MembershipGoal(target=10, milestone_step=3))
    for change in [join(1), join(2), join(3), cancel(3), join(4)]:
        with django_capture_on_commit_callbacks(execute=True):
            members.apply_payment_change(change)

    assert notices() == [(3, e) for e in EDITORS]


@pytest.mark.django_db
def test_milestones_passed_before_the_goal_was_set_are_marked_reached_without_a_notice(
    django_capture_on_commit_callbacks,
) -> None:
    for n in range(5):
        members.apply_payment_change(join(n))

    with django_capture_on_commit_callbacks(execute=True):
        goal = milestones.save_goal(MembershipGoal(target=10, milestone_step=2))
        milestones.record_reached_milestones()

    reached = dict(goal.milestones.values_list("threshold", "reached_at"))
    assert reached[2] is not None and reached[4] is not None
    assert reached[6] is None and reached[10] is None
    assert notices() == []


@pytest.mark.django_db
def test_an_active_goal_makes_the_others_inactive() -> None:
    first = milestones.save_goal(MembershipGoal(headline="First"))
    second = milestones.save_goal(MembershipGoal(headline="Second"))

    first.refresh_from_db()
    assert (first.is_active, second.is_active) == (False, True)
    assert goal_counter.read_snapshot().headline == "Second"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_milestone_crossed_by_concurrent_joins_sends_exactly_one_notice_per_editor() -> None:
    milestones.save_goal(MembershipGoal(target=1_000, milestone_step=25))
    start = threading.Barrier(10)

    def join_many(first: int) -> None:
        try:
            start.wait(timeout=30)
            for n in range(first, first + 6):
                members.apply_payment_change(join(n))
                # Every thread also runs the check itself, as duplicate tasks would.
                milestones.record_reached_milestones()
        finally:
            connection.close()

    threads = [threading.Thread(target=join_many, args=(i * 6,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert Member.objects.filter(status=Member.Status.ACTIVE).count() == 60
    assert notices() == [(t, e) for t in (25, 50) for e in EDITORS]
    assert GoalMilestone.objects.filter(reached_at__isnull=False).count() == 2
    sent = [m for m in mail.outbox if "members reached" in m.subject]
    assert len(sent) == 4
