"""Code below tasks.py enqueues by registered name (platform/task_queue), so a name no
task carries, or a process in which the tasks were never registered, fails only at the
first enqueue, in production, as a "broker unavailable" warning. These check both."""

import json
import re
import subprocess
import sys
from pathlib import Path

from django.conf import settings

REPO_ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r'"(subscriptions\.tasks\.[a-z_]+)"')


def names_the_code_enqueues() -> set[str]:
    names: set[str] = set()
    for path in [*REPO_ROOT.glob("subscriptions/**/*.py"), *REPO_ROOT.glob("newsroom/*.py")]:
        if path.name != "tasks.py":
            names.update(NAME.findall(path.read_text()))
    return names


def test_a_web_process_knows_every_task_the_code_enqueues_by_name() -> None:
    """In a fresh process set up as gunicorn's is (django.setup, no worker), every name
    the code and the beat schedule use is a registered task."""
    probe = (
        "import django, json; django.setup();"
        "from celery import current_app;"
        "print(json.dumps(sorted(n for n in current_app.tasks if n.startswith('subscriptions.'))))"
    )
    result = subprocess.run(  # noqa: S603 - our interpreter and our own probe
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        env={"DJANGO_SETTINGS_MODULE": "newsroom.settings", "DEBUG": "true", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    registered = set(json.loads(result.stdout.strip().splitlines()[-1]))

    used = names_the_code_enqueues()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert len(used) >= 8  # the scan finds them (the bulk actions, the outbox, ...)
    assert sorted(used - registered) == []
    assert sorted(scheduled - registered) == []
