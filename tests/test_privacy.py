"""Privacy requests: a subscriber's data as JSON and its erasure, from the admin or by
the reader through an emailed link; erasure leaves the address nowhere but as a hash,
which keeps it from being re-added by anyone but the person; unconfirmed sign-ups go
after 30 days."""

import io
import json
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.admin.models import CHANGE, LogEntry
from django.core import mail
from django.core.management import call_command
from django.db import models
from django.urls import reverse
from django.utils import timezone

from subscriptions import tasks, tokens
from subscriptions.exceptions import AddressErased
from subscriptions.mail import suppression
from subscriptions.models import (
    ConsentRecord,
    DeliveryEvent,
    Member,
    OutboundEmail,
    PrivacyEvent,
    Subscriber,
    Subscription,
    SuppressedAddress,
)
from subscriptions.privacy import personal_data
from subscriptions.signup import services
from subscriptions.tokens import confirmation_token, preferences_token, privacy_token
from tests.factories import NewsletterFactory
from tests.imports_support import import_file

pytestmark = pytest.mark.django_db
ANN, ANN_IP = "Ann.Reader@example.org", "203.0.113.77"


def sign_up(email: str, newsletters, *, ip: str = "192.0.2.1", confirm: bool = True):
    result = services.subscribe(
        email=email,
        newsletters=newsletters,
        source="form",
        consent=services.ConsentContext(
            ip_address=ip, user_agent="Test/1.0", page_url=f"https://x/?who={email}"
        ),
    )
    if confirm:
        claim = confirmation_token.read_token(confirmation_token.make_token(result.pending_ids))
        services.confirm_subscriptions(claim=claim, consent=services.ConsentContext(ip_address=ip))
    return Subscriber.objects.get(pk=result.subscriber_id)


@pytest.fixture
def ann(django_capture_on_commit_callbacks, admin_user) -> Subscriber:
    """A subscriber with something in every table that can hold an address or an IP."""
    first, second = NewsletterFactory(), NewsletterFactory()
    with django_capture_on_commit_callbacks(execute=True):
        subscriber = sign_up(ANN, [first, second], ip=ANN_IP)
    outbound = OutboundEmail.objects.filter(subscriber=subscriber).first()
    DeliveryEvent.objects.create(
        esp="Postmark",
        event_id="e1",
        kind=DeliveryEvent.Kind.SOFT_BOUNCE,
        recipient=ANN.lower(),
        occurred_at=timezone.now(),
        received_at=timezone.now(),
        outbound_email=outbound,
        description=f"Mailbox full for {ANN}",
        mta_response=f"452 {ANN} over quota",
    )
    Member.objects.create(email=ANN, name="Ann Reader", status="active", source="admin")
    LogEntry.objects.log_actions(admin_user.pk, [subscriber], CHANGE, change_message="edited")
    return subscriber


def dump() -> str:
    """Every table of every app, as text."""
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue().lower()


# Address and IP fields that never hold a reader's: the editors' own accounts and the
# admin's login attempts. Any other such field, in any app, must be shown to hold the
# reader's data before the erasure (so the fixture fills it) and none after.
STAFF_ONLY_FIELDS = {
    "auth.User.email",
    "axes.AccessAttempt.ip_address",
    "axes.AccessFailureLog.ip_address",
    "axes.AccessLog.ip_address",
}


def address_and_ip_fields() -> list[tuple[type[models.Model], str]]:
    return [
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if isinstance(field, models.EmailField | models.GenericIPAddressField)
    ]


def values_in(model: type[models.Model], field: str) -> set[str]:
    return {str(value).lower() for value in model.objects.values_list(field, flat=True)}


def test_erasure_leaves_the_address_and_ip_nowhere_but_keeps_others(ann) -> None:
    suppression.suppress(email=ANN, reason=SuppressedAddress.Reason.MANUAL, note=f"asked: {ANN}")
    bob = sign_up("bob@example.org", [NewsletterFactory()], ip="198.51.100.2")
    assert ANN.lower() in dump() and ANN_IP in dump()
    fields = address_and_ip_fields()
    readers_fields = [(m, f) for m, f in fields if f"{m._meta.label}.{f}" not in STAFF_ONLY_FIELDS]
    assert {f"{m._meta.label}.{f}" for m, f in fields} >= STAFF_ONLY_FIELDS  # still there
    for model, field in readers_fields:
        # The fixture reaches every such field: a new one it misses fails here.
        assert values_in(model, field) & {ANN.lower(), ANN_IP}, f"{model._meta.label}.{field}"

    assert personal_data.erase_subscriber(subscriber_id=ann.pk, actor="admin:ed") is True

    everything = dump()
    assert ANN.lower() not in everything
    assert ANN_IP not in everything
    assert "bob@example.org" in everything and "198.51.100.2" in everything
    # And field by field, in every model of every app with an address or an IP field.
    for model, field in fields:
        assert not values_in(model, field) & {ANN.lower(), ANN_IP}, f"{model._meta.label}.{field}"
    assert Subscriber.objects.filter(pk=bob.pk).exists()
    erased = PrivacyEvent.objects.get(kind=PrivacyEvent.Kind.ERASED)
    assert (erased.actor, erased.email_hash) == ("admin:ed", suppression.address_hash(ANN))
    assert Member.objects.get().status == "active"  # still counted, no longer named


def test_an_erased_address_is_not_re_added_by_an_import_or_an_editor(
    ann, tmp_path, settings
) -> None:
    settings.IMPORT_DIR = tmp_path
    newsletter = NewsletterFactory()
    personal_data.erase_subscriber(subscriber_id=ann.pk, actor="reader")
    path = tmp_path / "list.csv"
    path.write_text(f"email\n{ANN.upper()}\n")

    job = import_file(path, newsletter, basis="old")

    assert (job.added, job.suppressed) == (0, 1)
    with pytest.raises(AddressErased):
        services.add_by_editor(
            email=ANN,
            newsletters=[newsletter],
            actor="admin:ed",
            consent_basis="met at a fair",
            activate=True,
        )
    assert not Subscriber.objects.filter(email__iexact=ANN).exists()


def test_erasure_scrubs_the_person_from_past_import_reports(
    ann, tmp_path, settings, django_capture_on_commit_callbacks
) -> None:
    settings.IMPORT_DIR = tmp_path
    newsletter = NewsletterFactory()
    path = tmp_path / "list.csv"
    path.write_text(f"email\n{ANN}\n{ANN.upper()}\nnot an address\n ann.reader@EXAMPLE.org \n")
    job = import_file(path, newsletter, basis="old")
    report_file = Path(job.report_path)
    before = report_file.read_text()
    assert before.lower().count(ANN.lower()) == 2  # the two repeats

    with django_capture_on_commit_callbacks(execute=True):
        personal_data.erase_subscriber(subscriber_id=ann.pk, actor="reader")

    after = report_file.read_text()
    assert ANN.lower() not in after.lower()
    assert after.splitlines() == [
        "line,email,reason",
        '4,not an address,"Please, enter correct email address"',
    ]


def test_an_erased_person_may_sign_up_again_themselves(
    ann, django_capture_on_commit_callbacks
) -> None:
    newsletter = NewsletterFactory()
    personal_data.erase_subscriber(subscriber_id=ann.pk, actor="reader")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        subscriber = sign_up(ANN, [newsletter], confirm=True)

    assert [m.metadata["message_type"] for m in mail.outbox] == ["confirmation", "welcome"]
    assert Subscription.objects.get(subscriber=subscriber).status == "active"
    assert not suppression.is_erased(ANN)


def test_the_data_export_holds_everything_and_is_recorded(ann) -> None:
    data = personal_data.export_data(subscriber_id=ann.pk, actor="reader")

    assert data["subscriber"]["email"] == ANN
    assert len(data["subscriptions"]) == 2
    consent = data["subscriptions"][0]["consent_records"]
    assert {c["kind"] for c in consent} == {"signup", "confirmation"}
    assert consent[0]["ip_address"] == ANN_IP
    assert {e["kind"] for e in data["subscriptions"][0]["events"]} >= {"subscribed", "confirmed"}
    assert {e["kind"] for e in data["emails"]} == {"confirmation", "welcome"}
    assert data["delivery_events"][0]["kind"] == "soft_bounce"
    assert data["suppression"] == []
    assert data["memberships"][0]["status"] == "active"
    json.dumps(data)  # plain JSON values only
    assert PrivacyEvent.objects.filter(subscriber=ann, kind=PrivacyEvent.Kind.EXPORTED).exists()


# --- the admin ---------------------------------------------------------------------------


def test_an_editor_downloads_the_data_and_erases_after_a_confirmation_page(
    admin_client, ann
) -> None:
    data_url = reverse("admin:subscriptions_subscriber_data", args=[ann.pk])
    erase_url = reverse("admin:subscriptions_subscriber_erase", args=[ann.pk])

    download = admin_client.get(data_url)
    confirm_page = admin_client.get(erase_url)
    assert Subscriber.objects.filter(pk=ann.pk).exists()  # the page changed nothing
    erased = admin_client.post(erase_url)

    assert download["Content-Disposition"] == f'attachment; filename="subscriber-{ann.pk}.json"'
    assert json.loads(download.content)["subscriber"]["email"] == ANN
    exported = PrivacyEvent.objects.get(kind=PrivacyEvent.Kind.EXPORTED)
    assert (exported.email_hash, exported.actor) == (suppression.address_hash(ANN), "admin:admin")
    assert "It cannot be undone" in confirm_page.content.decode()
    assert erased.status_code == 302
    assert not Subscriber.objects.filter(pk=ann.pk).exists()
    assert PrivacyEvent.objects.get(kind=PrivacyEvent.Kind.ERASED).actor == "admin:admin"


def test_the_subscriber_page_shows_their_privacy_requests_and_links_the_log(
    admin_client, ann
) -> None:
    admin_client.get(reverse("admin:subscriptions_subscriber_data", args=[ann.pk]))

    page = admin_client.get(reverse("admin:subscriptions_subscriber_change", args=[ann.pk]))

    section = page.content.decode().split("Privacy requests", 1)[1]
    assert "Data exported" in section and "admin:admin" in section
    log_url = page.context["privacy_log_url"]
    assert suppression.address_hash(ANN) in log_url and "example.org" not in log_url
    assert f'href="{log_url.replace("&", "&amp;")}"' in page.content.decode()
    listed = admin_client.get(log_url).context["cl"].result_list
    assert [(e.kind, e.subscriber_id) for e in listed] == [(PrivacyEvent.Kind.EXPORTED, ann.pk)]


def test_the_privacy_log_in_the_admin_is_read_only_and_names_no_address(admin_client, ann) -> None:
    changelist = reverse("admin:subscriptions_privacyevent_changelist")
    admin_client.get(reverse("admin:subscriptions_subscriber_data", args=[ann.pk]))
    admin_client.post(reverse("admin:subscriptions_subscriber_erase", args=[ann.pk]))
    sign_up("someone.else@example.org", [NewsletterFactory()])
    other = Subscriber.objects.get(email="someone.else@example.org")
    personal_data.export_data(subscriber_id=other.pk, actor="reader")

    page = admin_client.get(changelist)
    found = admin_client.get(changelist, {"q": ANN.upper()}).context["cl"].result_list
    detail = admin_client.get(
        reverse("admin:subscriptions_privacyevent_change", args=[found[0].pk])
    )

    text = page.content.decode()
    assert "Personal data erased" in text and "Data exported" in text
    assert "ann.reader" not in text.lower() and ANN_IP not in text
    # Erased, yet found by the address: it is hashed and matched.
    assert [e.kind for e in found] == [PrivacyEvent.Kind.ERASED, PrivacyEvent.Kind.EXPORTED]
    assert suppression.address_hash(ANN) in detail.content.decode()
    assert "ann.reader" not in detail.content.decode().lower()
    assert admin_client.get(f"{changelist}add/").status_code == 403
    assert admin_client.post(detail.request["PATH_INFO"], {"kind": "exported"}).status_code == 403


def test_erasing_in_the_admin_needs_the_erase_permission(client, django_user_model, ann) -> None:
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="x" * 20, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_subscriber"))
    client.force_login(user)

    response = client.post(reverse("admin:subscriptions_subscriber_erase", args=[ann.pk]))

    assert response.status_code == 403
    assert Subscriber.objects.filter(pk=ann.pk).exists()


# --- the reader --------------------------------------------------------------------------


def privacy_link(message) -> str:
    return re.search(r"https://news\.example\.org(/privacy/[^/\s]+/)", message.body).group(1)


@pytest.mark.parametrize("action", ["export", "erase"])
def test_a_reader_asks_from_the_preferences_page_and_confirms_from_the_email(
    client, ann, action, django_capture_on_commit_callbacks
) -> None:
    preferences = reverse("subscriptions:preferences", args=[preferences_token.make_token(ann.pk)])
    mail.outbox.clear()
    page = client.get(preferences).content.decode()
    assert "Download my data" in page and "Delete my data" in page

    with django_capture_on_commit_callbacks(execute=True):
        asked = client.post(f"{preferences}privacy/", {"action": action})
    (message,) = mail.outbox
    link = privacy_link(message)
    confirmation_page = client.get(asked["Location"]).content.decode()
    shown = client.get(link)
    assert Subscriber.objects.filter(pk=ann.pk).exists()  # a GET changes nothing
    done = client.post(link)

    assert asked.status_code == 302
    assert "We've sent you an email to confirm" in confirmation_page
    assert message.to == [ANN]
    assert "List-Unsubscribe" not in message.extra_headers
    assert shown.status_code == 200
    if action == "export":
        assert done["Content-Disposition"] == 'attachment; filename="my-newsletter-data.json"'
        assert json.loads(done.content)["subscriber"]["email"] == ANN
    else:
        assert "Your data is deleted" in done.content.decode()
        assert not Subscriber.objects.filter(email__iexact=ANN).exists()
        assert client.get(link).status_code == 400  # the link died with the data


def test_privacy_emails_are_capped_per_day_and_the_answer_stays_the_same(
    client, ann, settings, django_capture_on_commit_callbacks
) -> None:
    preferences = reverse("subscriptions:preferences", args=[preferences_token.make_token(ann.pk)])
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        answers = [
            client.post(f"{preferences}privacy/", {"action": "export"}).status_code
            for _ in range(settings.PRIVACY_EMAILS_PER_DAY + 2)
        ]

    assert set(answers) == {302}
    assert len(mail.outbox) == settings.PRIVACY_EMAILS_PER_DAY


def test_a_privacy_link_expires_and_other_tokens_do_not_open_it(client, ann, monkeypatch) -> None:
    link = reverse("subscriptions:privacy", args=[privacy_token.make_token(ann.pk, "erase")])
    later = timezone.now() + timedelta(hours=25)
    monkeypatch.setattr(tokens, "_now", lambda: later)

    expired = client.post(link)
    monkeypatch.undo()
    borrowed = client.post(
        reverse("subscriptions:privacy", args=[preferences_token.make_token(ann.pk)])
    )
    bad_action = client.post(
        reverse("subscriptions:privacy", args=[privacy_token.make_token(ann.pk, "drop-table")])
    )

    assert (expired.status_code, borrowed.status_code, bad_action.status_code) == (410, 400, 400)
    assert Subscriber.objects.filter(pk=ann.pk).exists()


def test_an_unknown_action_from_the_preferences_page_is_refused(client, ann) -> None:
    preferences = reverse("subscriptions:preferences", args=[preferences_token.make_token(ann.pk)])

    response = client.post(f"{preferences}privacy/", {"action": "everything"})

    assert response.status_code == 400
    assert not OutboundEmail.objects.filter(kind__startswith="privacy").exists()


# --- unconfirmed sign-ups ------------------------------------------------------------------


def test_sign_ups_never_confirmed_after_30_days_are_removed(settings) -> None:
    newsletter, other = NewsletterFactory(), NewsletterFactory()
    old = sign_up("old@example.org", [newsletter], confirm=False)
    mixed = sign_up("mixed@example.org", [other])
    services.subscribe(
        email="mixed@example.org",
        newsletters=[newsletter],
        source="form",
        consent=services.ConsentContext(),
    )
    recent = sign_up("recent@example.org", [newsletter], confirm=False)
    Subscription.objects.filter(status="pending").exclude(subscriber=recent).update(
        pending_since=timezone.now() - timedelta(days=settings.PENDING_EXPIRY_DAYS + 1)
    )

    removed = personal_data.expire_unconfirmed()

    assert removed == 2
    assert not Subscriber.objects.filter(pk=old.pk).exists()
    assert list(Subscription.objects.filter(subscriber=mixed).values_list("status", flat=True)) == [
        "active"
    ]
    assert Subscription.objects.get(subscriber=recent).status == "pending"
    assert not ConsentRecord.objects.filter(subscription__subscriber=old).exists()


def test_a_reader_who_left_and_signed_up_again_unconfirmed_goes_back_to_having_left(
    settings,
) -> None:
    newsletter = NewsletterFactory()
    subscriber = sign_up("gone@example.org", [newsletter])
    subscription = subscriber.subscriptions.get()
    services.unsubscribe(subscription_id=subscription.pk, actor="reader", via="link")
    subscription.refresh_from_db()
    left_at = subscription.unsubscribed_at
    sign_up("gone@example.org", [newsletter], confirm=False)  # never confirmed
    Subscription.objects.filter(pk=subscription.pk).update(
        pending_since=timezone.now() - timedelta(days=settings.PENDING_EXPIRY_DAYS + 1)
    )
    consent_before = ConsentRecord.objects.filter(subscription=subscription).count()

    assert personal_data.expire_unconfirmed() == 1

    subscription.refresh_from_db()
    assert (subscription.status, subscription.unsubscribed_at) == ("unsubscribed", left_at)
    # The record of who they were and that they left stays: a later import skips them.
    assert ConsentRecord.objects.filter(subscription=subscription).count() == consent_before
    latest = subscription.events.first()
    assert (latest.kind, latest.from_status, latest.to_status, latest.actor) == (
        "expired",
        "pending",
        "unsubscribed",
        "system",
    )
    assert personal_data.expire_unconfirmed() == 0  # nothing left to end


def test_the_beat_task_ends_sign_ups_after_the_configured_days(settings) -> None:
    if "PENDING_EXPIRY_DAYS" not in os.environ:
        assert settings.PENDING_EXPIRY_DAYS == 30  # the default
    settings.PENDING_EXPIRY_DAYS = 7
    newsletter = NewsletterFactory()
    old = sign_up("eight@example.org", [newsletter], confirm=False)
    young = sign_up("six@example.org", [newsletter], confirm=False)
    for subscriber, days in ((old, 8), (young, 6)):
        Subscription.objects.filter(subscriber=subscriber).update(
            pending_since=timezone.now() - timedelta(days=days)
        )

    tasks.discard_expired_personal_data.delay()

    assert list(Subscriber.objects.values_list("email", flat=True)) == ["six@example.org"]


def test_the_beat_schedule_runs_the_snapshots_and_the_expiry(settings) -> None:
    from newsroom.celery import app

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert {
        "subscriptions.tasks.take_newsletter_snapshots",
        "subscriptions.tasks.expire_unconfirmed_subscriptions",
    } <= scheduled
    assert scheduled <= set(app.tasks)  # every entry names a task the worker knows
    assert settings.CELERY_BEAT_SCHEDULE["discard-expired-personal-data"]["schedule"] <= 86_400
