"""Baseline views: the least a Django view can do, under the app's own middleware."""

import json

from django.db import connection
from django.http import HttpRequest, JsonResponse
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
