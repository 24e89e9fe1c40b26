"""The app's models, one module per area."""

from subscriptions.models.delivery import (
    DeliveryEvent,
    EmailDomainRule,
    OutboundEmail,
    SuppressedAddress,
)
from subscriptions.models.membership import (
    GoalMilestone,
    Member,
    MemberCount,
    MemberEvent,
    MembershipGoal,
    MemberStatus,
    StripeEvent,
)
from subscriptions.models.subscriptions import (
    ConsentRecord,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionEvent,
    SubscriptionStatus,
)

__all__ = [
    "ConsentRecord",
    "DeliveryEvent",
    "EmailDomainRule",
    "GoalMilestone",
    "Member",
    "MemberCount",
    "MemberEvent",
    "MemberStatus",
    "MembershipGoal",
    "Newsletter",
    "OutboundEmail",
    "StripeEvent",
    "Subscriber",
    "Subscription",
    "SubscriptionEvent",
    "SubscriptionStatus",
    "SuppressedAddress",
]
