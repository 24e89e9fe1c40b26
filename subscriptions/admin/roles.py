"""The "newsletter editors" group: what an editor needs in the admin, and no more.

Editors run newsletters and look after subscribers; they do not delete people (that
would erase the consent record and event log), manage users, or edit logs. The group is
brought in line with this list after every `migrate`, so a permission added here reaches
existing installations too.
"""

from django.apps import AppConfig
from django.contrib.auth.models import Group, Permission

EDITORS_GROUP = "newsletter editors"

EDITOR_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "newsletter": ("view", "add", "change"),
    # change: the resend and unsubscribe actions; erase: privacy requests
    "subscriber": ("view", "change", "erase"),
    "subscription": ("view", "add", "change"),
    "subscriptionevent": ("view",),
    "consentrecord": ("view",),
    "outboundemail": ("view", "change"),  # change: the retry action
    "deliveryevent": ("view",),
    "suppressedaddress": ("view", "add", "change"),  # change: lifting, with a reason
    "emaildomainrule": ("view", "add", "change", "delete"),
    "subscriberimport": ("view", "add"),
    "member": ("view", "add", "change"),  # change: the cancel action
    "memberevent": ("view",),
    "membershipgoal": ("view", "add", "change"),
    "goalmilestone": ("view",),
    "stripeevent": ("view",),
    # Drafts and tests; sending to readers is `send_issue`, given to a user or a group
    # of its own by whoever runs the newsroom.
    "issue": ("view", "add", "change", "delete"),
}


def sync_editors_group(sender: AppConfig, **kwargs: object) -> None:
    """post_migrate receiver: make the group hold exactly EDITOR_PERMISSIONS."""
    using = str(kwargs.get("using", "default"))
    codenames = [
        f"{action}_{model}" for model, actions in EDITOR_PERMISSIONS.items() for action in actions
    ]
    permissions = Permission.objects.using(using).filter(
        content_type__app_label="subscriptions", codename__in=codenames
    )
    group, _ = Group.objects.using(using).get_or_create(name=EDITORS_GROUP)
    group.permissions.set(permissions)
