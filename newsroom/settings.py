"""Settings, read once from the environment (12-factor).

Every value has a default that works for the embedded set-up (`make run`): SQLite,
eager Celery when no Redis is configured, and a browsable local outbox for email.
`.env.example` lists every variable with a comment.
"""

from pathlib import Path

import environ

from newsroom import beat_schedule
from newsroom.content_policy import content_security_policy
from newsroom.log_privacy import logging_config
from newsroom.webhook_secret import refuse_placeholder_webhook_secret

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
# A local .env is a convenience for development; real deployments set the environment.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# Set but empty counts as unset: .env.example ships it empty.
SECRET_KEY = env.str("SECRET_KEY", default="") or ("insecure-dev-key-change-me" if DEBUG else "")
if not SECRET_KEY:
    raise environ.ImproperlyConfigured("Set SECRET_KEY (or DEBUG=true for a development key).")
if not DEBUG and SECRET_KEY.lower().startswith(("change-me", "changeme", "insecure-dev-key")):
    # A key anyone can read in this repository signs nothing in production.
    raise environ.ImproperlyConfigured(
        "SECRET_KEY is a placeholder. Generate one with: "
        'python -c "import secrets; print(secrets.token_urlsafe(50))"'
    )
# Old keys stay valid for verifying signatures, so rotating SECRET_KEY does not break
# unsubscribe links in emails already sent.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Absolute links in emails; there is no request to build them from inside a Celery task.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
SITE_NAME = env.str("SITE_NAME", default="The Kyiv Ledger")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "anymail",
    "corsheaders",
    "csp",
    "axes",
    "subscriptions",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The reader's language: the language switcher's cookie, else Accept-Language.
    "django.middleware.locale.LocaleMiddleware",
    # Then a page's own language (?lang=, from an embed or a link in an email).
    "subscriptions.languages.RequestedLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before CsrfViewMiddleware, which is the first to parse a form's body.
    "subscriptions.web.form_body.FormBodyCheckMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns lockouts into responses.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First, so a locked-out client is refused before its password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "newsroom.urls"
WSGI_APPLICATION = "newsroom.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "subscriptions.web.context_processors.site",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
# The sign-up's and the send's statements as prepared statements
# (subscriptions/platform/prepared.py); off for a connection pooler in transaction mode
# that cannot carry them.
PREPARED_STATEMENTS = env.bool("PREPARED_STATEMENTS", default=True)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so concurrent sign-ups queue up instead of
    # failing with "database is locked" when a read transaction tries to upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
# Each language names itself, as a language switcher should.
LANGUAGES = [("en", "English"), ("uk", "Українська")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The newsroom's own: the admin shows and takes times (an issue's schedule) in it.
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Redis, Celery, cache -------------------------------------------------------------
# Without REDIS_URL the embedded set-up runs tasks eagerly, in-process, after commit.
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# Celery's Django fixup would close the database connection around every task; a
# handler in newsroom/celery.py closes only old or broken ones instead (as per request).
CELERY_DB_REUSE_MAX = 2**62
# Redis redelivers an unacknowledged task after this long; retry countdowns stay below it.
# Short socket timeouts: a sign-up must not hang on a broker that does not answer (the
# outbox row is committed already, and the sweeper sends it once the broker is back).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker tries a broker that is down for as long as it takes (Celery's default exits).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# celery 5.7.0's consumer exits the worker when the broker drops while tasks are in flight
# (see newsroom/worker_consumer.py).
CELERY_WORKER_CONSUMER = "newsroom.worker_consumer:Consumer"
# Sends in flight when the broker drops are left to finish (not cut off mid-conversation
# with the ESP); the outbox row records how each ended.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TIMEZONE = TIME_ZONE
# What beat runs and how often (newsroom/beat_schedule.py).
OUTBOX_SWEEP_INTERVAL = beat_schedule.OUTBOX_SWEEP_INTERVAL
CELERY_BEAT_SCHEDULE = beat_schedule.BEAT_SCHEDULE

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Email -----------------------------------------------------------------------------
# Any Django or anymail backend, chosen here only. The embedded default writes each
# message to var/outbox/, browsable at /dev/outbox/ while DEBUG is on.
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="newsroom.dev_outbox.OutboxFileBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
DEV_OUTBOX_DIR = Path(env.str("DEV_OUTBOX_DIR", default=str(VAR_DIR / "outbox")))
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=20)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="The Kyiv Ledger <hello@example.org>")
# Newsletter mail (welcome emails, issues) may come from another address than
# transactional mail such as confirmations.
NEWSLETTER_FROM_EMAIL = env.str("NEWSLETTER_FROM_EMAIL", default=DEFAULT_FROM_EMAIL)
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
ANYMAIL = env.json("ANYMAIL", default={})
# Basic-auth credentials ("user:password") the ESP must send to /anymail/<esp>/...;
# several, comma-separated, while rotating. Without them the webhooks refuse every
# event when DEBUG is off; an example's credentials stop start-up.
if env.str("ANYMAIL_WEBHOOK_SECRET", default=""):
    ANYMAIL["WEBHOOK_SECRET"] = [s.strip() for s in env.list("ANYMAIL_WEBHOOK_SECRET") if s.strip()]
refuse_placeholder_webhook_secret(ANYMAIL.get("WEBHOOK_SECRET"))
if env.str("MAILGUN_WEBHOOK_SIGNING_KEY", default=""):
    ANYMAIL["MAILGUN_WEBHOOK_SIGNING_KEY"] = env.str("MAILGUN_WEBHOOK_SIGNING_KEY")
# Providers whose webhooks answer besides EMAIL_BACKEND's (anymail.backends.<esp>), e.g.
# "postmark,mailgun"; every other /anymail/<esp>/ URL answers 404.
ESP_WEBHOOKS = env.list("ESP_WEBHOOKS", default=[])

# --- Subscriptions -----------------------------------------------------------------------
CONFIRMATION_TOKEN_MAX_AGE_DAYS = env.int("CONFIRMATION_TOKEN_MAX_AGE_DAYS", default=7)
# Per-address caps on confirmation emails: a re-submission within the interval sends
# nothing new, and no address gets more than the daily cap, whoever asks.
CONFIRMATION_EMAIL_MIN_INTERVAL_SECONDS = env.int(
    "CONFIRMATION_EMAIL_MIN_INTERVAL_SECONDS", default=60
)
CONFIRMATION_EMAILS_PER_DAY = env.int("CONFIRMATION_EMAILS_PER_DAY", default=3)
EMAIL_CHECK_DELIVERABILITY = env.bool("EMAIL_CHECK_DELIVERABILITY", default=False)
# Most ESPs cannot deliver to non-ASCII local parts (SMTPUTF8); IDN domains are fine.
EMAIL_ALLOW_SMTPUTF8 = env.bool("EMAIL_ALLOW_SMTPUTF8", default=False)
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=8)
OUTBOX_RETRY_BASE_SECONDS = env.float("OUTBOX_RETRY_BASE_SECONDS", default=5.0)
OUTBOX_RETRY_MAX_SECONDS = env.float("OUTBOX_RETRY_MAX_SECONDS", default=600.0)
# The sweeper re-enqueues a row never taken up this long after it was queued (the broker
# was down), a retry overdue by this much, or a send claimed this long ago (its worker
# died).
OUTBOX_STALE_AFTER_SECONDS = env.int("OUTBOX_STALE_AFTER_SECONDS", default=120)

# --- Deliverability ---------------------------------------------------------------------
# Soft bounces since the address's last successful delivery, within the window, that
# put it on the suppression list.
SOFT_BOUNCE_LIMIT = env.int("SOFT_BOUNCE_LIMIT", default=3)
SOFT_BOUNCE_WINDOW_DAYS = env.int("SOFT_BOUNCE_WINDOW_DAYS", default=30)
# Also offer mailto: in List-Unsubscribe (RFC 2369); mail to it is handled by anymail's
# inbound webhook.
UNSUBSCRIBE_MAILTO = env.str("UNSUBSCRIBE_MAILTO", default="")
# The newsroom's postal address, printed under every issue (CAN-SPAM asks for one).
NEWSROOM_POSTAL_ADDRESS = env.str("NEWSROOM_POSTAL_ADDRESS", default="")
# Messages a second, and in any hour, all workers together hand the provider for issues
# (0: no cap): a plan's limits.
ISSUE_MESSAGES_PER_SECOND = env.int("ISSUE_MESSAGES_PER_SECOND", default=0)
ISSUE_MESSAGES_PER_HOUR = env.int("ISSUE_MESSAGES_PER_HOUR", default=0)
# The Celery queue of issues' sending tasks: a worker of its own may take it (README).
ISSUE_QUEUE = env.str("ISSUE_QUEUE", default="issues")

# --- Editors: imports, privacy requests ---------------------------------------------------
# Where uploaded import files and their reports are kept; web and worker must share it.
IMPORT_DIR = Path(env.str("IMPORT_DIR", default=str(VAR_DIR / "imports")))
# The pace of confirmation emails for a pending import (the rest wait in the outbox).
IMPORT_CONFIRMATIONS_PER_MINUTE = env.int("IMPORT_CONFIRMATIONS_PER_MINUTE", default=600)
# An import's report of skipped rows names people: it is deleted after this many days.
IMPORT_REPORT_RETENTION_DAYS = env.int("IMPORT_REPORT_RETENTION_DAYS", default=30)
# The largest import file the admin accepts, in bytes.
IMPORT_MAX_UPLOAD_BYTES = env.int("IMPORT_MAX_UPLOAD_BYTES", default=1024 * 1024 * 1024)

# Pending subscriptions never confirmed are removed after this many days.
PENDING_EXPIRY_DAYS = env.int("PENDING_EXPIRY_DAYS", default=30)
# A link to a reader's preferences page adds newsletters without another email for this
# many days; older, it may only take them away (and the page offers a fresh one).
PREFERENCES_LINK_MAX_AGE_DAYS = env.int("PREFERENCES_LINK_MAX_AGE_DAYS", default=30)
# A reader's "download / delete my data" link: how long it works, and how many a day.
PRIVACY_LINK_MAX_AGE_HOURS = env.int("PRIVACY_LINK_MAX_AGE_HOURS", default=24)
PRIVACY_EMAILS_PER_DAY = env.int("PRIVACY_EMAILS_PER_DAY", default=3)

# --- Membership goal --------------------------------------------------------------------
# Where the banner's call to action sends readers.
MEMBERSHIP_URL = env.str("MEMBERSHIP_URL", default="https://www.example.org/membership/")
# Editors told by email when the member count reaches a milestone.
GOAL_NOTIFY_EMAILS = env.list("GOAL_NOTIFY_EMAILS", default=[])
# The signing secret of the Stripe webhook endpoint (whsec_...).
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")

# --- Web security ----------------------------------------------------------------------
# Number of reverse proxies in front of the app that append to X-Forwarded-For. With 0
# (the default) the header is ignored, since any client can send it.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT:
    # The proxy terminates TLS and says so; only trusted when there is a proxy.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Secure by default outside DEBUG; each can be turned off for a special set-up.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# The container health check speaks plain HTTP from inside, behind the TLS proxy.
SECURE_REDIRECT_EXEMPT = [r"^healthz/$", r"^readyz/$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SECURE = env.bool("LANGUAGE_COOKIE_SECURE", default=not DEBUG)
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
# Both commit every subdomain to HTTPS for a year: opt in once they all serve it.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Off by default on purpose (a newsroom's other subdomains, an old CMS or a shop, may
# still serve plain HTTP, and both commit every one of them for a year): the deploy check
# would warn about the two on every deployment that has not opted in, a warning a
# newcomer can only learn to ignore. Exactly those two are silenced; README's Security
# section says how to opt in.
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# The JSON API is called from the newsroom's other sites. No credentials: it needs no
# cookies, so none are sent or accepted cross-origin.
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_METHODS = ["GET", "POST", "OPTIONS"]
CORS_ALLOW_CREDENTIALS = False
CORS_PREFLIGHT_MAX_AGE = 3600

# The admin: its own URL, and login throttling (django-axes).
ADMIN_URL = env.str("ADMIN_URL", default="admin/").strip("/") + "/"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "subscriptions.web.request_info.client_ip"
# What django-axes writes into its log lines ("AXES: New login failure by {...}") is
# masked by axes itself: the password always, and these. Pinned rather than left to the
# package default, so an upgrade cannot start logging usernames (often addresses) or IPs.
AXES_PASSWORD_FORM_FIELD = "password"  # noqa: S105 - the form field's name
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address"]

# --- Abuse resistance -------------------------------------------------------------------
# Sliding-window limits ("count/window", window in s, m, h or d, e.g. "5/10m"), per
# client IP and per target address, separately for the HTML form and the JSON API.
RATE_LIMITS = {
    "form-ip": env.str("RATE_LIMIT_FORM_IP", default="20/h"),
    "form-email": env.str("RATE_LIMIT_FORM_EMAIL", default="5/h"),
    "api-ip": env.str("RATE_LIMIT_API_IP", default="60/h"),
    "api-email": env.str("RATE_LIMIT_API_EMAIL", default="5/h"),
}
RATE_LIMIT_REDIS_URL = env.str("RATE_LIMIT_REDIS_URL", default=REDIS_URL)
# RATE_LIMIT_REDIS_URL is any node of a Redis Cluster (which has only database 0).
RATE_LIMIT_REDIS_CLUSTER = env.bool("RATE_LIMIT_REDIS_CLUSTER", default=False)
# Bot trap: every sign-up carries a signed form token; one sent sooner than this after the
# form was rendered, or later than the max age, or already used for another address, may
# not be a person: nothing is stored and the reader confirms on a second step. An hour:
# long enough to read an article before signing up, short enough that a harvested token
# is soon worthless (and it serves one address anyway).
SIGNUP_FORM_MIN_SECONDS = env.float("SIGNUP_FORM_MIN_SECONDS", default=2.0)
SIGNUP_FORM_MAX_AGE_SECONDS = env.int("SIGNUP_FORM_MAX_AGE_SECONDS", default=3600)
# Optional challenge: "" (off), "turnstile" or "hcaptcha".
SIGNUP_CHALLENGE = env.str("SIGNUP_CHALLENGE", default="")
SIGNUP_CHALLENGE_SITE_KEY = env.str("SIGNUP_CHALLENGE_SITE_KEY", default="")
SIGNUP_CHALLENGE_SECRET_KEY = env.str("SIGNUP_CHALLENGE_SECRET_KEY", default="")
# Override only to point at a stand-in in tests (the real ones need the internet).
SIGNUP_CHALLENGE_VERIFY_URL = ""
SIGNUP_CHALLENGE_SCRIPT_URL = ""
# No inline scripts or styles on our pages, nothing may frame the site, and a challenge's
# provider is the only other origin a page loads from.
CONTENT_SECURITY_POLICY = content_security_policy(SIGNUP_CHALLENGE, SIGNUP_CHALLENGE_SCRIPT_URL)
# Refuse addresses at known disposable-mail domains (the disposable-email-domains list).
BLOCK_DISPOSABLE_EMAIL_DOMAINS = env.bool("BLOCK_DISPOSABLE_EMAIL_DOMAINS", default=False)

# Sign-up bodies are small, and so are the other reader-facing forms (confirm,
# unsubscribe, preferences, privacy); anything larger, from a form or the API, is
# refused before it is parsed (413).
SIGNUP_MAX_BODY_BYTES = env.int("SIGNUP_MAX_BODY_BYTES", default=16_384)

# Logs hold no email addresses or IPs: every handler masks them (newsroom.log_privacy).
LOGGING = logging_config(
    level=env.str("LOG_LEVEL", default="INFO"), log_format=env.str("LOG_FORMAT", default="plain")
)
