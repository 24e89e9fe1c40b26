"""Deployment checks (`manage.py check --deploy`) for what email and webhooks need."""

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_webhook_secret(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    if settings.ANYMAIL.get("WEBHOOK_SECRET"):
        return []
    return [
        Warning(
            "ANYMAIL_WEBHOOK_SECRET is not set: anyone could post bounce and complaint "
            "events to /anymail/<esp>/tracking/.",
            hint="Set ANYMAIL_WEBHOOK_SECRET=user:password and give the same credentials "
            "to your ESP's webhook URL.",
            id="subscriptions.W001",
        )
    ]


@register(Tags.security, deploy=True)
def check_site_url_is_https(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    if settings.SITE_URL.startswith("https://"):
        return []
    return [
        Warning(
            f"SITE_URL is {settings.SITE_URL!r}: confirmation and unsubscribe links in "
            "emails would be plain HTTP, and RFC 8058 one-click unsubscribe needs HTTPS.",
            hint="Set SITE_URL to the site's public https:// address.",
            id="subscriptions.W002",
        )
    ]
