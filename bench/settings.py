"""The production settings with the benchmarks' baseline views mounted next to the app,
so a baseline runs under exactly the server configuration the app does."""

from newsroom.settings import *  # noqa: F403 - the production settings, unchanged

ROOT_URLCONF = "bench.urls"
# The bench talks plain HTTP on loopback; there is no TLS proxy in front.
SECURE_SSL_REDIRECT = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
STATIC_ROOT = BASE_DIR / "var" / "bench-static"  # noqa: F405 - from the star import
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
