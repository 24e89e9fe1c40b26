#!/usr/bin/env bash
# `make run`: the embedded set-up. SQLite in var/, emails in var/outbox/ (browse them at
# /dev/outbox/), and a real Celery worker when Redis answers, else eager tasks.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export DEBUG="${DEBUG:-true}"
mkdir -p var

if [ -z "${REDIS_URL:-}" ] && "$BIN/python" - <<'PY' 2>/dev/null
import redis
redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=0.5).ping()
PY
then
  export REDIS_URL="redis://127.0.0.1:6379/0"
fi

"$BIN/python" manage.py migrate --noinput
"$BIN/python" manage.py load_demo_newsletters

if [ -n "${REDIS_URL:-}" ]; then
  echo "Redis answers at $REDIS_URL: starting a Celery worker with beat."
  # One worker for both queues here: the default one and the issues' (ISSUE_QUEUE, as
  # the settings read it, .env included).
  ISSUE_QUEUE=$("$BIN/python" manage.py shell -c \
    "from django.conf import settings; print(settings.ISSUE_QUEUE)" 2>/dev/null | tail -n 1)
  "$BIN/celery" -A newsroom worker -B --loglevel=info --concurrency=2 \
    -Q "celery,${ISSUE_QUEUE:-issues}" --schedule var/celerybeat-schedule &
  WORKER_PID=$!
  trap 'kill $WORKER_PID 2>/dev/null || true' EXIT
else
  echo "No Redis: tasks run eagerly in-process after each commit."
fi

echo
echo "  Site:    http://127.0.0.1:8000/"
echo "  Outbox:  http://127.0.0.1:8000/dev/outbox/   (emails land here)"
echo "  Admin:   http://127.0.0.1:8000/admin/   (python manage.py createsuperuser)"
echo
"$BIN/python" manage.py runserver 127.0.0.1:8000
