"""Membership goals and their milestones: keep one goal active, lay out its milestones,
and record each milestone reached exactly once, telling the editors by email.

Exactly once holds however many members join at the same moment: the milestone row
is claimed under a row lock (`reached_at` is set once), and the outbox refuses a
second notice for the same milestone and address (a database constraint).
"""

import logging
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from subscriptions.mail import outbox
from subscriptions.membership import goal_counter
from subscriptions.models import GoalMilestone, MemberCount, MembershipGoal

logger = logging.getLogger(__name__)


def save_goal(goal: MembershipGoal) -> MembershipGoal:
    """Save a goal an editor changed: an active one makes every other inactive, its
    milestones follow the target and step, and readers see the new wording."""
    with transaction.atomic():
        if goal.is_active:
            MembershipGoal.objects.filter(is_active=True).exclude(pk=goal.pk).update(
                is_active=False
            )
        goal.save()
        lay_out_milestones(goal)
        transaction.on_commit(goal_counter.publish_goal, robust=True)
    return goal


def milestone_thresholds(goal: MembershipGoal) -> list[int]:
    """Every `milestone_step` members up to the target, and the target itself."""
    return sorted({*range(goal.milestone_step, goal.target, goal.milestone_step), goal.target})


def lay_out_milestones(goal: MembershipGoal) -> None:
    """Create the goal's missing milestones and drop unreached ones it no longer has.

    Milestones the count already passed when they are laid out are marked reached
    without a notice: they were reached before anyone set them.
    """
    wanted = set(milestone_thresholds(goal))
    goal.milestones.filter(reached_at__isnull=True).exclude(threshold__in=wanted).delete()
    existing = set(goal.milestones.values_list("threshold", flat=True))
    count = MemberCount.objects.filter(pk=1).values_list("active", flat=True).first() or 0
    now = timezone.now()
    GoalMilestone.objects.bulk_create(
        [
            GoalMilestone(goal=goal, threshold=t, reached_at=now if t <= count else None)
            for t in sorted(wanted - existing)
        ]
    )


def record_reached_milestones() -> list[int]:
    """Mark the active goal's milestones the count has reached and queue a notice to
    each address in GOAL_NOTIFY_EMAILS; returns the thresholds newly reached."""
    now = timezone.now()
    with transaction.atomic():
        count = MemberCount.objects.filter(pk=1).values_list("active", flat=True).first() or 0
        reached = list(
            GoalMilestone.objects.select_for_update(skip_locked=True)
            .filter(goal__is_active=True, reached_at__isnull=True, threshold__lte=count)
            .order_by("threshold")
        )
        for milestone in reached:
            milestone.reached_at = now
            milestone.save(update_fields=["reached_at"])
            for address in settings.GOAL_NOTIFY_EMAILS:
                outbox.queue_milestone_email(milestone=milestone, to_email=address, now=now)
        if reached:
            thresholds = [m.threshold for m in reached]
            transaction.on_commit(partial(logger.info, "milestones reached: %s", thresholds))
    return [m.threshold for m in reached]
