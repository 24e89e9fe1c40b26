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
    # ESP webhooks: /anymail/<esp>/tracking/ and /anymail/<esp>/inbound/; three of
    # anymail's views are wrapped to answer a non-JSON body with 400 (see webhooks.py).
    path("anymail/postmark/tracking/", webhooks.PostmarkTrackingWebhookView.as_view()),
    path("anymail/postmark/inbound/", webhooks.PostmarkInboundWebhookView.as_view()),
    path("anymail/amazon_ses/tracking/", webhooks.AmazonSESTrackingWebhookView.as_view()),
    path("anymail/", include("anymail.urls")),
    path("", include("subscriptions.urls")),
]

if settings.DEBUG:
    urlpatterns.append(path("dev/outbox/", include("newsroom.dev_outbox")))
