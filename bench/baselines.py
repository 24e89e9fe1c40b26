"""Baseline views: the least a Django view can do, under the app's own middleware."""

import json
from functools import cache

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

# Made by the sign-up benchmark in its fresh database (bench/signup.py).
ONE_INSERT_TABLE = "bench_one_insert"


def no_database(request: HttpRequest) -> JsonResponse:
    """A JSON answer of the goal API's size that touches neither the database nor Redis."""
    return JsonResponse(
        {
            "headline": "Help us reach 20,000 members",
            "question": "Can we reach 20,000 members?",
            "target": 20000,
            "members": 12345,
            "percent": 61.7,
            "remaining": 7655,
            "updated_at": "2026-12-01T12:00:00+00:00",
        }
    )


@csrf_exempt
@require_POST
def one_insert(request: HttpRequest) -> JsonResponse:
    """Read the sign-up's JSON body and insert its address as one row: the database's
    ceiling for a view that writes (one statement, one commit)."""
    email = json.loads(request.body)["email"]
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {ONE_INSERT_TABLE} (email) VALUES (%s)", [email])  # noqa: S608
    return JsonResponse({"status": "pending"}, status=202)


@csrf_exempt
@require_POST
def signup_statement(request: HttpRequest) -> JsonResponse:
    """Only the database work of a new address's sign-up, the one statement of
    subscriptions/fast_path.py, with nothing around it (no validation, no limits, no
    enqueue): how close the API can come to the one-insert view, given what a sign-up
    writes."""
    from subscriptions.signup import fast_path
    from subscriptions.signup.transitions import ConsentContext

    email = json.loads(request.body)["email"]
    fast_path.insert_new_address(
        address=email,
        newsletter_ids=[_newsletter_id()],
        source="api",
        actor="reader",
        consent=ConsentContext(),
        consent_kind="signup",
        language="",
        now=timezone.now(),
    )
    return JsonResponse({"status": "pending"}, status=202)


@cache
def _newsletter_id() -> int:
    from subscriptions.models import Newsletter

    return Newsletter.objects.get(slug="daily-digest").pk
