# syntax=docker/dockerfile:1
# Production image for newsroom: one image runs the web app (gunicorn, the default CMD),
# the Celery worker and Celery beat (see docker-compose.yml).
#
#   docker build -t newsroom .
#   docker run --env-file .env -p 8000:8000 newsroom
#
# No secret is baked in: SECRET_KEY and everything else comes from the runtime
# environment (see .env.example).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=newsroom.settings

# Unprivileged runtime user. It gets a real, writable home so tools that keep state
# under $HOME (e.g. gunicorn's control socket in ~/.gunicorn/) work.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
        --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, so code changes do not invalidate this layer.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

# The code stays owned by root (read-only for the app user); only var/ (local outbox,
# SQLite fallback, imports: a named volume in compose takes this directory's owner) and
# staticfiles/ (collectstatic output) are writable by it.
COPY . .
RUN mkdir -p /app/var/imports /app/staticfiles \
    && chown app:app /app/var /app/var/imports /app/staticfiles

USER app

# settings.py refuses to load without SECRET_KEY when DEBUG is off, so collectstatic
# gets a throwaway key for this one RUN step only. It is not an ENV: it does not end up
# in the final image's environment. Override with --build-arg if you like; never pass a
# real key here (build args are visible in `docker history`).
ARG COLLECTSTATIC_SECRET_KEY=collectstatic-build-only-not-a-real-secret
RUN SECRET_KEY="${COLLECTSTATIC_SECRET_KEY}" python manage.py collectstatic --noinput

EXPOSE 8000

# newsroom/gunicorn.conf.py: bind, workers, and logs without client IPs or addresses.
CMD ["gunicorn", "--config", "newsroom/gunicorn.conf.py", "newsroom.wsgi:application"]
