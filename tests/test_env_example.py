"""`.env.example` is the operator's list of settings: exactly the environment variables
newsroom/settings.py reads, no more (a knob that is gone) and no fewer (one nobody can
find)."""

import re
import runpy
from pathlib import Path

import environ

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = REPO_ROOT / "newsroom" / "settings.py"
# KEY=value, or "# KEY=value" for one that is off unless set (its comment says so).
LISTED = re.compile(r"^(?:# )?([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def variables_the_settings_read(monkeypatch) -> set[str]:
    """Every name the settings ask django-environ for, whatever the branch: each typed
    reader (str, bool, int, list, json, db_url, ...) goes through Env.get_value."""
    read: set[str] = set()
    get_value = environ.Env.get_value

    def recording(self, var, *args, **kwargs):
        read.add(var)
        return get_value(self, var, *args, **kwargs)

    monkeypatch.setattr(environ.Env, "get_value", recording)
    monkeypatch.setenv("DEBUG", "true")
    runpy.run_path(str(SETTINGS_FILE))
    return read


def test_env_example_lists_exactly_the_variables_the_settings_read(monkeypatch) -> None:
    listed = LISTED.findall((REPO_ROOT / ".env.example").read_text())
    read = variables_the_settings_read(monkeypatch)

    assert sorted(set(listed) - read) == [], "listed in .env.example, read by no setting"
    assert sorted(read - set(listed)) == [], "read by the settings, missing in .env.example"


def test_the_recording_sees_a_read_inside_a_condition(monkeypatch) -> None:
    """MAILGUN_WEBHOOK_SIGNING_KEY is read only in an `if`: the list is what runs."""
    assert "MAILGUN_WEBHOOK_SIGNING_KEY" in variables_the_settings_read(monkeypatch)
