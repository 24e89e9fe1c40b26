from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from newsroom.health import healthz, readyz
from subscriptions.web import esp_webhooks

# A database that does not answer gets 503 with Retry-After; anything else, the 500 page.
handler500 = "subscriptions.web.outage.server_error"

urlpatterns = [
    path("healthz/", healthz, name="healthz"),
    path("readyz/", readyz, name="readyz"),
    path(settings.ADMIN_URL, admin.site.urls),
    # ESP webhooks: /anymail/<esp>/tracking/ and /anymail/<esp>/inbound/, anymail's
    # views guarded (only this site's ESPs, a secret in production; see esp_webhooks.py).
    path("anymail/", include((esp_webhooks.urlpatterns, "anymail"))),
    path("", include("subscriptions.urls")),
]

if settings.DEBUG:
    urlpatterns.append(path("dev/outbox/", include("newsroom.dev_outbox")))
