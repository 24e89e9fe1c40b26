"""Create the demo newsletters and the demo membership goal. Safe to run again:
existing newsletters (matched by slug) and any existing goal are left as editors
changed them."""

from typing import Any

from django.core.management.base import BaseCommand

from subscriptions.membership import milestones
from subscriptions.models import MembershipGoal, Newsletter

DEMO_NEWSLETTERS = [
    {
        "slug": "explaining-ukraine",
        "name": "Explaining Ukraine",
        "host_line": "Explaining Ukraine with Kate Tsurkan",
        "cadence": Newsletter.Cadence.WEEKLY,
        "description": (
            "Every Thursday, one question about Ukraine answered in depth: the history "
            "behind a headline, the people shaping a decision, and what to read next."
        ),
        "welcome_message": (
            "Thank you for joining. Each Thursday you'll get one question answered properly, "
            "with sources. Reply to any issue to suggest the next question."
        ),
        "position": 10,
    },
    {
        "slug": "daily-digest",
        "name": "The Daily Digest",
        "host_line": "From the newsroom, every weekday morning",
        "cadence": Newsletter.Cadence.DAILY,
        "description": (
            "The five stories you need before your first coffee, written by our editors "
            "and sent at 7:00 Kyiv time."
        ),
        "welcome_message": "Your first digest arrives tomorrow at 7:00 Kyiv time.",
        "position": 20,
    },
    {
        "slug": "editors-picks",
        "name": "Editors' Picks",
        "host_line": "Chosen by our editors, every Saturday",
        "cadence": Newsletter.Cadence.WEEKLY,
        "description": (
            "The week's best reporting, long reads and photo stories, picked by the people "
            "who edited them."
        ),
        "welcome_message": "Look out for your first Editors' Picks on Saturday.",
        "position": 30,
    },
]


class Command(BaseCommand):
    help = "Create the demo newsletters and membership goal (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        for data in DEMO_NEWSLETTERS:
            defaults = {k: v for k, v in data.items() if k != "slug"}
            _, created = Newsletter.objects.get_or_create(slug=data["slug"], defaults=defaults)
            verb = "created" if created else "already there"
            self.stdout.write(f"{data['name']}: {verb}")
        if MembershipGoal.objects.exists():
            self.stdout.write("Membership goal: already there")
        else:
            milestones.save_goal(
                MembershipGoal(
                    headline="Help us reach 20,000 members",
                    question="Can we reach 20,000 members?",
                    target=20_000,
                    milestone_step=1_000,
                )
            )
            self.stdout.write("Membership goal: created")
