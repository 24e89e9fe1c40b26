from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    verbose_name = "Newsletters and subscribers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the anymail tracking and inbound signal receivers, and registers the
        # deployment checks.
        from django.db.models.signals import post_migrate

        from subscriptions import checks, webhooks  # noqa: F401
        from subscriptions.roles import sync_editors_group

        post_migrate.connect(sync_editors_group, sender=self)
