"""The Celery application: `celery -A newsroom worker` and `celery -A newsroom beat`."""

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsroom.settings")

app = Celery("newsroom")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**kwargs: object) -> None:
    """Configure the worker's and beat's logging from settings.LOGGING, as Django does.

    With a receiver on this signal Celery installs no handlers of its own, so its lines
    ("Task ... retry: <exception>") pass through the masking filter like every other.
    The level is LOG_LEVEL; a `--loglevel` option has no effect.
    """
    from django.conf import settings
    from django.utils.log import configure_logging

    configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
