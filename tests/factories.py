import time

import factory
from django.utils import timezone

from subscriptions.abuse.bot_traps import make_form_token
from subscriptions.models import Newsletter, Subscriber, Subscription


class NewsletterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Newsletter
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Newsletter {n}")
    slug = factory.Sequence(lambda n: f"newsletter-{n}")
    description = "A newsletter for tests."
    host_line = "With a test host"
    welcome_message = "Welcome aboard."


class SubscriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscriber

    email = factory.Sequence(lambda n: f"reader{n}@example.org")


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    subscriber = factory.SubFactory(SubscriberFactory)
    newsletter = factory.SubFactory(NewsletterFactory)
    status = Subscription.Status.PENDING
    pending_since = factory.LazyFunction(timezone.now)


def human_form_token(seconds_ago: float = 30) -> str:
    """The signed render time a real form carries, as if rendered that long ago."""
    return make_form_token(rendered_at=time.time() - seconds_ago)


def with_form_token(payload: object) -> object:
    """A JSON API body as our script sends it: with a fresh form token, unless the
    body brings its own (or is no object at all)."""
    if not isinstance(payload, dict):
        return payload
    return {"form_token": human_form_token(), **payload}
