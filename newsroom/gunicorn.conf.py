"""gunicorn's settings for the web service: `gunicorn -c newsroom/gunicorn.conf.py
newsroom.wsgi:application` (the Dockerfile's command and docker-compose.yml's).

Access lines carry no client IP, no query string and no referrer: the IP is personal
data, and a query string or a referring page may hold an address (``?email=...``).
gunicorn's own lines ("Invalid request from ip=...") go through the same masking filter
as the application's.
"""

from gunicorn.glogging import Logger

from newsroom.log_privacy import MaskPersonalData

bind = "0.0.0.0:8000"
# Three processes of four threads for two cores. Measured against sync workers, other
# thread counts and uvicorn (BENCHMARKS.md, "Which server"): sync serves as much, but a
# slow client holds a sync worker for its whole request, and compose puts no buffering
# proxy in front; uvicorn runs Django's synchronous views five times slower.
workers = 3
worker_class = "gthread"
threads = 4
accesslog = "-"
# Time, method, path, protocol, status, bytes, milliseconds taken, user agent.
access_log_format = '%(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'

_MASK = MaskPersonalData()


class MaskingLogger(Logger):
    """gunicorn's logger with the masking filter on each of its handlers. setup() runs
    again on a reload and makes new handlers; one shared filter is never added twice."""

    def setup(self, cfg: object) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.addFilter(_MASK)


logger_class = MaskingLogger
