"""The editors' admin, one module per area."""

from subscriptions.admin import deliverability, newsletters, subscribers

__all__ = ["deliverability", "newsletters", "subscribers"]
