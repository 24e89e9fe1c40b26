"""The Celery application: `celery -A newsroom worker` and `celery -A newsroom beat`."""

import os
import warnings

from celery import Celery
from celery.exceptions import CPendingDeprecationWarning
from celery.signals import setup_logging, task_postrun, task_prerun

from newsroom.worker_consumer import SweepOnConnect

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsroom.settings")

app = Celery("newsroom")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Imported here, not by name in settings: a bootstep is a class the app holds.
app.steps["consumer"].add(SweepOnConnect)
# Celery warns at every lost connection that it will cancel the tasks in flight by
# default one day; settings.py keeps that off on purpose. Once is enough to know.
warnings.filterwarnings(
    "once",
    message=r"(?s).*worker_cancel_long_running_tasks_on_connection_loss",
    category=CPendingDeprecationWarning,
)


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


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(task: object = None, **kwargs: object) -> None:
    """Around each task, close the database connection only when it is too old or
    broken, as Django does around each request (CONN_MAX_AGE, CONN_HEALTH_CHECKS).

    Celery's own Django fixup closes it around every task unless CELERY_DB_REUSE_MAX is
    set (the settings set it out of reach): a new PostgreSQL connection for every email
    was most of a send's time.
    """
    from django.db import close_old_connections

    # A task run eagerly runs inside its caller, maybe inside its transaction.
    if getattr(getattr(task, "request", None), "is_eager", False):
        return
    close_old_connections()
