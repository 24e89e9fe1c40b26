from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    verbose_name = "Newsletters and subscribers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the anymail tracking and inbound signal receivers, and registers the
        # deployment checks.
        from django.db.models.signals import post_migrate

        # Registers every task in every process, the web's included: code below
        # tasks.py enqueues by name (platform/task_queue), and Celery's autodiscovery
        # imports the module only when a worker starts.
        from subscriptions import (
            checks,  # noqa: F401
            tasks,  # noqa: F401
        )
        from subscriptions.admin.roles import sync_editors_group
        from subscriptions.web import esp_webhooks  # noqa: F401

        post_migrate.connect(sync_editors_group, sender=self)
