"""The files of the minimal Django project bench/peer.py writes for django-newsletter:
its settings, URLs, WSGI entry point and gunicorn configuration."""

SETTINGS = """
SECRET_KEY = {secret_key!r}
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.sites",
    "django.contrib.messages",
    "sorl.thumbnail",
    "newsletter",
]
# What `django-admin startproject` writes.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "peer_site.urls"
WSGI_APPLICATION = "peer_site.wsgi.application"
TEMPLATES = [
    {{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {{
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        }},
    }}
]
# As the app's under the bench: persistent connections with health checks.
DATABASES = {{
    "default": {{
        "ENGINE": "django.db.backends.postgresql",
        "NAME": {database!r},
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "CONN_MAX_AGE": 600,
        "CONN_HEALTH_CHECKS": True,
    }}
}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
SITE_ID = 1
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
DEFAULT_FROM_EMAIL = "news@example.org"
NEWSLETTER_CONFIRM_EMAIL = True
NEWSLETTER_THUMBNAIL = "sorl-thumbnail"
NEWSLETTER_USE_HTTPS = True
LOGGING = {{"version": 1, "disable_existing_loggers": False, "root": {{"level": "WARNING"}}}}
"""

URLS = """
from django.http import HttpResponse
from django.urls import include, path


def healthz(request):
    return HttpResponse("ok")


urlpatterns = [
    path("healthz/", healthz),
    path("newsletter/", include("newsletter.urls")),
]
"""

WSGI = """
from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
"""

# The app's gunicorn configuration, unchanged. newsroom/__init__.py starts Celery, which
# the peer's virtualenv does not have, so a bare package stands in for it: the
# configuration needs only newsroom/log_privacy.py.
GUNICORN_CONFIG = """
import sys
import types

package = types.ModuleType("newsroom")
package.__path__ = [{newsroom!r}]
sys.modules["newsroom"] = package
with open({config!r}) as source:
    exec(compile(source.read(), {config!r}, "exec"))
"""
