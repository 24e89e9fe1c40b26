"""Baseline views: the least a Django view can do, under the app's own middleware."""

from django.http import HttpRequest, JsonResponse


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
