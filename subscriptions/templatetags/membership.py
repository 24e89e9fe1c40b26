"""`{% membership_banner %}`: the membership goal with its live counter, for any page.

It reads the goal from Redis (no SQL when Redis is warm) and renders nothing when
there is no active goal; `goal.js` keeps the count live by polling /api/v1/goal.
"""

from django import template
from django.conf import settings

from subscriptions import goal_counter

register = template.Library()


@register.inclusion_tag("subscriptions/_membership_banner.html")
def membership_banner() -> dict:
    return {
        "goal": goal_counter.read_snapshot(),
        "membership_url": settings.MEMBERSHIP_URL,
        "poll_seconds": settings.GOAL_POLL_SECONDS,
    }
