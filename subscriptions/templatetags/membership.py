"""`{% membership_banner %}`: the membership goal with its live counter, for any page.

It reads the goal from Redis (no SQL when Redis is warm) and renders nothing when
there is no active goal; `goal.js` keeps the count live by polling /api/v1/goal.
"""

from django import template
from django.conf import settings
from django.utils.translation import ngettext

from subscriptions.membership import goal_counter

register = template.Library()

# A number in each plural category the browser's Intl.PluralRules may name, so goal.js
# can pick the right word for any count without a catalog of its own.
_PLURAL_SAMPLES = {"one": 1, "few": 2, "many": 5, "other": 5}


def members_words() -> dict[str, str]:
    return {
        category: ngettext("member", "members", sample)
        for category, sample in _PLURAL_SAMPLES.items()
    }


def banner_context(*, goal_api: str | None = None) -> dict:
    return {
        "goal": goal_counter.read_snapshot(),
        "membership_url": settings.MEMBERSHIP_URL,
        "poll_seconds": goal_counter.POLL_SECONDS,
        "goal_api": goal_api,
        "members_words": members_words(),
    }


@register.inclusion_tag("subscriptions/_membership_banner.html", takes_context=True)
def membership_banner(context: template.Context) -> dict:
    return {**banner_context(), "LANGUAGE_CODE": context.get("LANGUAGE_CODE")}
