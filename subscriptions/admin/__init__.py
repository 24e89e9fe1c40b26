"""The editors' admin, one module per area."""

from subscriptions.admin import deliverability, membership, newsletters, subscribers

__all__ = ["deliverability", "membership", "newsletters", "subscribers"]
