"""System checks. The ones for settings that every request reads fail `manage.py check`,
`migrate` and `runserver`, so a typo stops the deployment instead of turning every
sign-up into a 500, as does a provider in ESP_WEBHOOKS that anymail does not know. The
deployment ones (`--deploy`) say what email and webhooks need."""

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from redis.connection import parse_url

from newsroom.webhook_secret import GENERATE_COMMAND
from subscriptions.abuse.challenges import CHALLENGES
from subscriptions.abuse.ratelimit import LIMIT_NAMES, Rate
from subscriptions.platform.task_queue import unknown_transport_options
from subscriptions.web.esp_webhooks import WEBHOOK_ESPS, mounted_esps, webhook_secret_is_set


def _variable(limit_name: str) -> str:
    """The environment variable settings.py reads the limit from ("api-ip" ->
    RATE_LIMIT_API_IP), the name an operator knows."""
    return "RATE_LIMIT_" + limit_name.upper().replace("-", "_")


@register(Tags.security)
def check_rate_limits(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for name in LIMIT_NAMES:
        if name not in settings.RATE_LIMITS:
            errors.append(
                Error(
                    f"RATE_LIMITS has no rate for {name!r}.",
                    hint=f"Give it one, e.g. {_variable(name)}=20/h.",
                    id="subscriptions.E001",
                )
            )
            continue
        value = settings.RATE_LIMITS[name]
        try:
            Rate.parse(value)
        except (TypeError, ValueError):
            errors.append(
                Error(
                    f"{_variable(name)} is not a rate: {value!r}.",
                    hint="Write count/window with the window in s, m, h or d, e.g. 20/h or 5/10m.",
                    id="subscriptions.E001",
                )
            )
    return errors


@register(Tags.security)
def check_rate_limit_redis_cluster(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """redis-py's cluster client takes only a TCP URL of database 0; with anything else
    every check would fail open (logged and counted, but the limits would be off)."""
    if not settings.RATE_LIMIT_REDIS_CLUSTER:
        return []
    url = settings.RATE_LIMIT_REDIS_URL
    if not url:
        problem = "RATE_LIMIT_REDIS_URL is empty"
    else:
        try:
            options = parse_url(url)
        except ValueError as error:
            problem = f"RATE_LIMIT_REDIS_URL is not a Redis URL ({error})"
        else:
            if "path" in options:
                problem = "RATE_LIMIT_REDIS_URL is a Unix socket"
            elif options.get("db", 0) != 0:
                problem = f"RATE_LIMIT_REDIS_URL names database {options['db']}"
            else:
                return []
    return [
        Error(
            f"RATE_LIMIT_REDIS_CLUSTER is on but {problem}.",
            hint="Give the redis:// or rediss:// URL of any node of the cluster, with "
            "database 0 (a cluster has no other), or set RATE_LIMIT_REDIS_CLUSTER=false.",
            id="subscriptions.E006",
        )
    ]


@register(Tags.security)
def check_signup_challenge(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    name = settings.SIGNUP_CHALLENGE.strip().lower()
    if not name:
        return []
    if name not in CHALLENGES:
        return [
            Error(
                f"SIGNUP_CHALLENGE is {settings.SIGNUP_CHALLENGE!r}, which is not a challenge "
                "this site knows.",
                hint=f"Use one of {sorted(CHALLENGES)}, or leave it empty to turn it off.",
                id="subscriptions.E002",
            )
        ]
    missing = [
        variable
        for variable in ("SIGNUP_CHALLENGE_SITE_KEY", "SIGNUP_CHALLENGE_SECRET_KEY")
        if not getattr(settings, variable)
    ]
    if missing:
        # The widget would not render, or every answer would fail verification: no
        # reader could sign up.
        return [
            Error(
                f"SIGNUP_CHALLENGE is {name!r} but {' and '.join(missing)} is empty.",
                hint="Set both keys from the provider's dashboard.",
                id="subscriptions.E003",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_webhook_secret(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    esps = mounted_esps()
    if not esps or webhook_secret_is_set():
        return []
    # Production refuses every event without a secret (subscriptions/web/esp_webhooks.py), so
    # bounces and complaints would be lost.
    return [
        Error(
            f"ANYMAIL_WEBHOOK_SECRET is not set: the webhooks of {', '.join(sorted(esps))} "
            "refuse every event while DEBUG is off.",
            hint=f"Generate one with {GENERATE_COMMAND}, set ANYMAIL_WEBHOOK_SECRET to it "
            "and give the same credentials to your ESP's webhook URL.",
            id="subscriptions.E004",
        )
    ]


@register(Tags.security)
def check_esp_webhooks(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    unknown = {name.strip().lower() for name in settings.ESP_WEBHOOKS} - WEBHOOK_ESPS - {""}
    if not unknown:
        return []
    # A misspelt provider's webhook would answer 404 to the ESP, and its bounces be lost.
    return [
        Error(
            f"ESP_WEBHOOKS names providers anymail has no webhooks for: "
            f"{', '.join(sorted(unknown))}.",
            hint=f"Use names from {sorted(WEBHOOK_ESPS)}, as in /anymail/<esp>/.",
            id="subscriptions.E005",
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


@register()
def check_broker_transport_options(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    unknown = unknown_transport_options(settings.CELERY_BROKER_TRANSPORT_OPTIONS or {})
    if not unknown:
        return []
    return [
        Error(
            f"CELERY_BROKER_TRANSPORT_OPTIONS has options the task queue helper was never "
            f"checked against: {', '.join(unknown)}. One may change the message a worker reads.",
            hint="Check subscriptions/platform/task_queue.py against kombu with the option set "
            "(tests/test_task_queue.py), then list it there as neutral or shaping.",
            id="subscriptions.E007",
        )
    ]
