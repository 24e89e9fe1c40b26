"""The editors' admin, one module per area."""

from subscriptions.admin import (
    deliverability,
    imports,
    issues,
    membership,
    newsletters,
    privacy,
    subscribers,
)

__all__ = [
    "deliverability",
    "imports",
    "issues",
    "membership",
    "newsletters",
    "privacy",
    "subscribers",
]
