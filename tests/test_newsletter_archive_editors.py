"""Editors archive and unarchive newsletters in the admin (never delete them), see
which are archived, and cannot add anyone to an archived one: not by hand, not by an
import (one already running stops), and a reader's old confirmation link does not
activate a sign-up to it either."""

import csv
import io
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.messages import get_messages
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from subscriptions.admin.roles import EDITORS_GROUP
from subscriptions.lists.imports import jobs
from subscriptions.models import Newsletter, SubscriberImport, Subscription
from subscriptions.tokens import confirmation_token
from tests.factories import NewsletterFactory, with_form_token
from tests.imports_support import import_file

pytestmark = pytest.mark.django_db

Status = Subscription.Status
NEWSLETTERS = reverse("admin:subscriptions_newsletter_changelist")
ADD_SUBSCRIPTION = reverse("admin:subscriptions_subscription_add")


@pytest.fixture(autouse=True)
def _import_dir(settings, tmp_path):
    settings.IMPORT_DIR = tmp_path / "imports"


@pytest.fixture
def digest() -> Newsletter:
    return NewsletterFactory(slug="daily-digest", name="Daily Digest", position=0)


@pytest.fixture
def weekly() -> Newsletter:
    return NewsletterFactory(slug="weekly-letter", name="Weekly Letter", position=1)


@pytest.fixture
def editor_client() -> Client:
    editor = User.objects.create_user("olena", is_staff=True)
    editor.groups.add(Group.objects.get(name=EDITORS_GROUP))
    client = Client()
    client.force_login(editor)
    return client


def act(client: Client, action: str, *newsletters: Newsletter) -> list[str]:
    response = client.post(
        NEWSLETTERS,
        {"action": action, "_selected_action": [n.pk for n in newsletters], "index": "0"},
    )
    assert response.status_code == 302
    return [str(message) for message in get_messages(response.wsgi_request)]


def listed(client: Client, query: str = "") -> list[str]:
    response = client.get(NEWSLETTERS + query)
    assert response.status_code == 200
    return [newsletter.slug for newsletter in response.context["cl"].result_list]


def write_csv(path: Path, emails: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email"])
        writer.writerows([email] for email in emails)
    return path


def test_an_editor_archives_and_unarchives_and_is_told_what_was_done(
    editor_client, digest, weekly
) -> None:
    archived = act(editor_client, "archive_newsletters", digest, weekly)
    again = act(editor_client, "archive_newsletters", digest)
    unarchived = act(editor_client, "unarchive_newsletters", weekly)

    assert archived[-1] == (
        "Archived 2 newsletters: Daily Digest, Weekly Letter. Readers no longer see them and "
        "nobody can be added; every subscription and its history is kept."
    )
    assert again[-1] == "Nothing to do: the selected newsletters were archived already."
    assert unarchived[-1] == (
        "Unarchived 1 newsletter: Weekly Letter. It is back as before, subscribers and all."
    )
    archived = {n.slug: n.archived_at is not None for n in Newsletter.objects.all()}
    assert archived == {"daily-digest": True, "weekly-letter": False}


def test_the_newsletter_list_shows_and_filters_which_are_archived(
    admin_client, digest, weekly
) -> None:
    act(admin_client, "archive_newsletters", digest)

    page = admin_client.get(NEWSLETTERS).content.decode()

    assert "column-archived_at" in page
    assert listed(admin_client) == ["daily-digest", "weekly-letter"]
    assert listed(admin_client, "?archived=yes") == ["daily-digest"]
    assert listed(admin_client, "?archived=no") == ["weekly-letter"]


def test_editors_may_archive_but_still_not_delete(editor_client, digest) -> None:
    response = editor_client.get(NEWSLETTERS)
    actions = {name for name, _ in response.context["action_form"].fields["action"].choices}

    assert {"archive_newsletters", "unarchive_newsletters"} <= actions
    assert "delete_selected" not in actions
    delete_page = reverse("admin:subscriptions_newsletter_delete", args=[digest.pk])
    assert editor_client.post(delete_page, {"post": "yes"}).status_code == 403
    assert Newsletter.objects.filter(pk=digest.pk).exists()


def test_nobody_can_be_added_to_an_archived_newsletter_by_hand(
    editor_client, digest, weekly
) -> None:
    act(editor_client, "archive_newsletters", digest)

    form = editor_client.get(ADD_SUBSCRIPTION).context["form"]
    response = editor_client.post(
        ADD_SUBSCRIPTION,
        {
            "email": "ann@example.org",
            "newsletters": [digest.pk],
            "status": Status.ACTIVE,
            "consent_basis": "paper form",
        },
    )

    assert list(form.fields["newsletters"].queryset) == [weekly]
    assert response.status_code == 200
    assert response.context["form"].errors["newsletters"]
    assert not Subscription.objects.exists()


def test_an_import_into_an_archived_newsletter_is_refused(
    tmp_path, admin_client, digest, weekly
) -> None:
    act(admin_client, "archive_newsletters", digest)
    path = write_csv(tmp_path / "list.csv", ["ann@example.org"])
    upload = io.BytesIO(path.read_bytes())
    upload.name = "list.csv"

    with pytest.raises(jobs.ImportRefused, match="Daily Digest is archived"):
        import_file(path, digest)
    with pytest.raises(CommandError, match="Daily Digest is archived"):
        call_command("import_subscribers", str(path), newsletter="daily-digest", status="pending")
    form = admin_client.get(reverse("admin:subscriptions_subscriberimport_add")).context["form"]
    posted = admin_client.post(
        reverse("admin:subscriptions_subscriberimport_add"),
        {"newsletter": digest.pk, "file": upload, "status": "pending", "consent_basis": ""},
    )

    assert list(form.fields["newsletter"].queryset) == [weekly]
    assert posted.status_code == 200
    assert posted.context["form"].errors["newsletter"]
    assert not SubscriberImport.objects.exists()
    assert not Subscription.objects.exists()


def test_an_import_stops_at_the_chunk_after_its_newsletter_is_archived(
    tmp_path, admin_client, digest, settings, monkeypatch
) -> None:
    monkeypatch.setattr(jobs, "CHUNK_ROWS", 2)
    path = write_csv(tmp_path / "list.csv", [f"reader{n}@example.org" for n in range(6)])

    def archive_after_the_first_chunk(progress: SubscriberImport) -> None:
        if progress.rows_read == 2:
            act(admin_client, "archive_newsletters", digest)

    job = import_file(path, digest, on_chunk=archive_after_the_first_chunk)

    assert job.state == SubscriberImport.State.FAILED
    assert job.error == (
        "Daily Digest was archived while the import ran: it stopped after line 3 (2 rows "
        "read). To finish, unarchive it and import the file again; rows already added "
        "count as already subscribed."
    )
    assert Subscription.objects.filter(newsletter=digest).count() == 2


def test_a_confirmation_link_does_not_activate_a_sign_up_to_a_newsletter_archived_since(
    admin_client, client, digest, weekly, django_capture_on_commit_callbacks
) -> None:
    response = client.post(
        "/api/v1/subscriptions",
        with_form_token(
            {"email": "ann@example.org", "newsletters": ["daily-digest", "weekly-letter"]}
        ),
        content_type="application/json",
    )
    assert response.status_code == 202
    ids = list(Subscription.objects.order_by("pk").values_list("pk", flat=True))
    token = confirmation_token.make_token(ids)
    act(admin_client, "archive_newsletters", digest)
    mail.outbox = []

    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(reverse("subscriptions:confirm", args=[token]))

    assert confirmed.status_code == 200
    statuses = dict(Subscription.objects.values_list("newsletter__slug", "status"))
    assert statuses == {"daily-digest": Status.PENDING, "weekly-letter": Status.ACTIVE}
    assert [m.subject for m in mail.outbox] == [mail.outbox[0].subject]
    assert "Weekly Letter" in mail.outbox[0].body
