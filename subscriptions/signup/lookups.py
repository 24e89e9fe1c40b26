"""What every sign-up reads and editors rarely change: the public newsletters and the
email domain rules. Each web process keeps them for CACHE_SECONDS (one second), so a
busy sign-up path reads them once a second per process instead of twice a request; an
editor's change reaches every process within that second, and the process that saved
it at once. A newsletter deleted or archived within that second is caught
by the sign-up's write itself (`archiving.hold_open`).
"""

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from django.db.models.signals import post_delete, post_save

from subscriptions.models import EmailDomainRule, Newsletter

Value = TypeVar("Value")
# How long a web process keeps them; 0 reads them on every sign-up.
CACHE_SECONDS = 1.0


class _Remembered(Generic[Value]):
    def __init__(self, load: Callable[[], Value]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._value: Value | None = None
        self._loaded_at = float("-inf")

    def get(self) -> Value:
        with self._lock:
            if time.monotonic() - self._loaded_at < CACHE_SECONDS:
                return self._value  # type: ignore[return-value]
        value = self._load()
        with self._lock:
            self._value, self._loaded_at = value, time.monotonic()
        return value

    def forget(self, **kwargs: object) -> None:
        with self._lock:
            self._loaded_at = float("-inf")


def _load_public_newsletters() -> dict[str, Newsletter]:
    return {n.slug: n for n in Newsletter.objects.public()}


def _load_domain_rules() -> dict[str, str]:
    return dict(EmailDomainRule.objects.values_list("domain", "kind"))


_public_newsletters = _Remembered(_load_public_newsletters)
_domain_rules = _Remembered(_load_domain_rules)


def public_newsletters_by_slug() -> dict[str, Newsletter]:
    """Every public newsletter by its slug. The objects are shared: read, never change."""
    return _public_newsletters.get()


def domain_rules() -> dict[str, str]:
    """Every editor's domain rule (domain → kind)."""
    return _domain_rules.get()


def forget_all() -> None:
    _public_newsletters.forget()
    _domain_rules.forget()


for _model, _remembered in ((Newsletter, _public_newsletters), (EmailDomainRule, _domain_rules)):
    post_save.connect(_remembered.forget, sender=_model, weak=False)
    post_delete.connect(_remembered.forget, sender=_model, weak=False)
