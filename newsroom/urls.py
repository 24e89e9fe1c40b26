from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from newsroom.health import healthz
from subscriptions import webhooks

# A database that does not answer gets 503 with Retry-After; anything else, the 500 page.
handler500 = "subscriptions.outage.server_error"

urlpatterns = [
    path("healthz/", healthz, name="healthz"),
    path(settings.ADMIN_URL, admin.site.urls),
    # ESP webhooks: /anymail/<esp>/tracking/ and /anymail/<esp>/inbound/, anymail's
    # views guarded (only this site's ESPs, a secret in production; see webhooks.py).
    path("anymail/", include((webhooks.urlpatterns, "anymail"))),
    path("", include("subscriptions.urls")),
]

if settings.DEBUG:
    urlpatterns.append(path("dev/outbox/", include("newsroom.dev_outbox")))
