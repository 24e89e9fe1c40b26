"""The app's models, one module per area."""

from subscriptions.models.delivery import (
    DeliveryEvent,
    EmailDomainRule,
    OutboundEmail,
    SuppressedAddress,
)
from subscriptions.models.imports import SubscriberImport
from subscriptions.models.insight import NewsletterSnapshot
from subscriptions.models.issues import Issue, IssueDelivery
from subscriptions.models.membership import (
    GoalMilestone,
    Member,
    MemberCount,
    MemberEvent,
    MembershipGoal,
    MemberStatus,
    StripeEvent,
)
from subscriptions.models.privacy import PrivacyEvent
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
    "Issue",
    "IssueDelivery",
    "Member",
    "MemberCount",
    "MemberEvent",
    "MemberStatus",
    "MembershipGoal",
    "Newsletter",
    "NewsletterSnapshot",
    "OutboundEmail",
    "PrivacyEvent",
    "StripeEvent",
    "Subscriber",
    "SubscriberImport",
    "Subscription",
    "SubscriptionEvent",
    "SubscriptionStatus",
    "SuppressedAddress",
]
