"""The JSON API, for the newsroom's other sites and the inline form. Same validation
and the same answer as the HTML form; errors as `{"errors": {field: [messages]}}`."""

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from subscriptions.forms import SignupForm
from subscriptions.models import Subscription
from subscriptions.views import SUCCESS_MESSAGE


def _error(field: str, message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"errors": {field: [message]}}, status=status)


# No cookies are needed or used: the API is called cross-origin from other sites, so
# CSRF protection (which guards cookie-authenticated requests) does not apply.
@csrf_exempt
@require_POST
def create_subscription(request: HttpRequest) -> JsonResponse:
    if request.content_type != "application/json":
        return _error("__all__", "Send a JSON body with Content-Type: application/json.")
    try:
        payload = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _error("__all__", "The body is not valid JSON.")
    if not isinstance(payload, dict):
        return _error("__all__", "Send a JSON object.")
    form = SignupForm(data=payload)
    if not form.is_valid():
        errors = {
            field: [error["message"] for error in field_errors]
            for field, field_errors in form.errors.get_json_data().items()
        }
        return JsonResponse({"errors": errors}, status=400)
    form.submit(request, source=Subscription.Source.API)
    return JsonResponse({"status": "pending", "message": SUCCESS_MESSAGE}, status=202)
