"""`/healthz/`: the container health check. It answers over plain HTTP (exempt from the
HTTPS redirect, since the check runs inside the container, behind the TLS proxy) and
says whether the database answers. Redis is left out on purpose: sign-ups work without
it, so its outage must not get the web container restarted."""

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return HttpResponse("database unavailable\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")
