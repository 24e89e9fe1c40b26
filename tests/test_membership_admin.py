"""Editors manage members and the goal in the admin, and import members from CSV: every
change goes through the member services, so it is counted and logged."""

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from subscriptions.membership import members, milestones
from subscriptions.models import Member, MemberCount, MemberEvent, MembershipGoal

pytestmark = pytest.mark.django_db

MEMBERS = reverse("admin:subscriptions_member_changelist")
ADD_MEMBER = reverse("admin:subscriptions_member_add")


def active_count() -> int:
    return MemberCount.objects.get(pk=1).active


def test_an_editor_adds_a_member_who_is_counted_and_logged(admin_client) -> None:
    response = admin_client.post(
        ADD_MEMBER,
        {
            "email": "Ann@Example.ORG",
            "name": "Ann",
            "tier": "Supporter",
            "amount": "5.00",
            "currency": "eur",
            "_continue": "1",
        },
    )

    assert response.status_code == 302
    member = Member.objects.get()
    assert (member.email, member.status, member.source, member.currency) == (
        "Ann@example.org",
        "active",
        "admin",
        "EUR",
    )
    assert response["Location"] == reverse("admin:subscriptions_member_change", args=[member.pk])
    assert list(MemberEvent.objects.values_list("to_status", "actor")) == [
        ("active", "admin:admin")
    ]
    assert active_count() == 1


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"email": "not an address"}, "Please, enter correct email address"),
        ({"email": "ann@example.org\r\nBcc: x@example.org"}, "Please, enter correct email address"),
        ({"email": "ann@example.org", "currency": "euro"}, "three-letter currency code"),
        ({"email": "ann@example.org", "amount": "-5"}, "cannot be negative"),
    ],
)
def test_a_bad_add_form_shows_the_error_and_stores_nothing(admin_client, fields, error) -> None:
    response = admin_client.post(ADD_MEMBER, {"name": "", "tier": "", "amount": "", **fields})

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Member.objects.exists()
    assert active_count() == 0


def test_the_cancel_action_ends_memberships_and_lowers_the_count(admin_client) -> None:
    ann = members.add_member(email="ann@example.org", actor="test")
    bob = members.add_member(email="bob@example.org", actor="test")

    admin_client.post(MEMBERS, {"action": "cancel", "_selected_action": [ann.pk], "index": "0"})

    ann.refresh_from_db()
    bob.refresh_from_db()
    assert (ann.status, bob.status) == ("cancelled", "active")
    assert ann.ended_at is not None
    assert active_count() == 1


def test_members_can_be_searched_and_filtered(admin_client) -> None:
    members.add_member(email="ann@example.org", name="Ann Lee", actor="test")
    members.add_member(email="bob@example.org", actor="test", status=Member.Status.PAST_DUE)

    found = admin_client.get(MEMBERS, {"q": "lee"})
    past_due = admin_client.get(MEMBERS, {"status__exact": "past_due"})

    assert [str(m) for m in found.context["cl"].result_list] == ["ann@example.org"]
    assert [str(m) for m in past_due.context["cl"].result_list] == ["bob@example.org"]


def test_the_member_page_is_read_only_with_its_history(admin_client) -> None:
    member = members.add_member(email="ann@example.org", actor="test")
    members.cancel_members(member_ids=[member.pk], actor="admin:ann")

    page = admin_client.get(reverse("admin:subscriptions_member_change", args=[member.pk]))
    admin_client.post(
        reverse("admin:subscriptions_member_change", args=[member.pk]),
        {"email": "mallory@example.org", "status": "active"},
    )

    text = page.content.decode()
    assert 'name="email"' not in text
    assert "admin:ann" in text
    member.refresh_from_db()
    assert (member.email, member.status) == ("ann@example.org", "cancelled")


def test_the_goal_page_shows_progress_and_saving_a_goal_lays_out_milestones(admin_client) -> None:
    for n in range(3):
        members.add_member(email=f"m{n}@example.org", actor="test")
    goal = milestones.save_goal(MembershipGoal(target=10, milestone_step=5))

    page = admin_client.get(reverse("admin:subscriptions_membershipgoal_change", args=[goal.pk]))
    admin_client.post(
        reverse("admin:subscriptions_membershipgoal_add"),
        {
            "headline": "A new drive",
            "question": "Can we?",
            "target": "40",
            "milestone_step": "20",
            "is_active": "on",
            "milestones-TOTAL_FORMS": "0",
            "milestones-INITIAL_FORMS": "0",
        },
    )

    assert '<progress max="10" value="3">30.0%</progress> 3 of 10 members (30.0%)' in (
        page.content.decode()
    )
    new = MembershipGoal.objects.get(headline="A new drive")
    goal.refresh_from_db()
    assert (new.is_active, goal.is_active) == (True, False)
    assert list(new.milestones.values_list("threshold", flat=True)) == [20, 40]


# --- the CSV import --------------------------------------------------------------------


def run_import(path: Path) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_members", str(path), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_importing_members_adds_good_rows_updates_known_ones_and_reports_bad_ones(
    tmp_path: Path,
) -> None:
    members.add_member(email="known@example.org", actor="test", status=Member.Status.PAST_DUE)
    csv_file = tmp_path / "members.csv"
    csv_file.write_text(
        "email,name,status,tier,amount,currency,external_id,started_at\n"
        "ann@example.org,Ann,active,Supporter,5,eur,,2025-01-31\n"
        "KNOWN@example.org,Known,active,,,,,\n"
        "not-an-address,,,,,,,\n"
        "bob@example.org,Bob,gold,,,,,\n"
        "cara@example.org,,,,lots,,,\n"
        "dan@example.org,,,,,,,yesterday\n"
        "eve@example.org,,cancelled,,,,sub_9,\n",
        encoding="utf-8",
    )

    out, err = run_import(csv_file)

    assert "Imported 3 member(s); rejected 4 row(s)." in out
    assert err.splitlines() == [
        "line 4: not a valid address: 'not-an-address'",
        "line 5: unknown status 'gold'",
        "line 6: not an amount: 'lots'",
        "line 7: not a date: 'yesterday'",
    ]
    assert dict(Member.objects.values_list("email", "status")) == {
        "ann@example.org": "active",
        "known@example.org": "active",
        "eve@example.org": "cancelled",
    }
    assert Member.objects.get(email="ann@example.org").source == "import"
    assert active_count() == 2


def test_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    binary = tmp_path / "members.csv"
    binary.write_bytes(b"email\n\xff\xfe\x00bad")

    with pytest.raises(CommandError, match="Cannot read"):
        run_import(tmp_path / "missing.csv")
    with pytest.raises(CommandError, match="Cannot read"):
        run_import(binary)
    (tmp_path / "no-email.csv").write_text("name\nAnn\n")
    with pytest.raises(CommandError, match="`email` column"):
        run_import(tmp_path / "no-email.csv")
