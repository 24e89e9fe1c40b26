from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path(settings.ADMIN_URL, admin.site.urls),
    # ESP webhooks: /anymail/<esp>/tracking/ and /anymail/<esp>/inbound/
    path("anymail/", include("anymail.urls")),
    path("", include("subscriptions.urls")),
]

if settings.DEBUG:
    urlpatterns.append(path("dev/outbox/", include("newsroom.dev_outbox")))
