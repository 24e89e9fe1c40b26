"""Deployment checks (`manage.py check --deploy`) for what the ESP integration needs."""

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
