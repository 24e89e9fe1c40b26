"""The API's OpenAPI description is served at /api/schema/, and schemathesis, generating
requests from it (valid and invalid alike), finds no server error and no response that
strays from the description."""

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from subscriptions.models import Subscriber
from subscriptions.signup.addresses import normalize_email
from tests.factories import NewsletterFactory

pytestmark = pytest.mark.django_db


# Loaded when the module is collected: the description is static and its view touches
# no database.
# Over HTTPS, as production serves it: this handler's SecurityMiddleware was built
# with the suite's settings, which redirect plain HTTP.
BASE_URL = "https://localhost"
# An invalid body may also be too large for us to read at all: 413 is as right an answer
# to it as 400 (schemathesis's default list leaves 413 out).
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": ["400", "404", "405", "406", "413", "415", "422", "429"]
            }
        }
    }
)
schema = schemathesis.openapi.from_wsgi(
    "/api/schema/", get_wsgi_application(), base_url=BASE_URL, config=CONFIG
)


@pytest.fixture
def newsletters(db) -> Iterator[None]:
    NewsletterFactory(slug="explaining-ukraine")
    NewsletterFactory(slug="daily-digest")
    # The real WSGI handler closes the database connection after each request, which
    # would end the test's transaction; Django's own test client unhooks it the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=150,
    deadline=None,
    # The database fixture is shared across examples on purpose: rows accumulate, and
    # the check below holds for all of them together.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_generated_requests_get_no_server_error_and_match_the_description(
    case, newsletters
) -> None:
    response = case.call_and_validate(
        base_url=BASE_URL,
        excluded_checks=[
            # Valid-by-schema is wider than valid-by-product: `format: email` admits
            # addresses email-validator refuses (no dot in the domain, reserved names),
            # and slugs that name no newsletter; those rightly get a 400.
            schemathesis.checks.positive_data_acceptance,
        ],
    )

    assert response.status_code < 500
    for subscriber in Subscriber.objects.all():
        assert normalize_email(subscriber.email) == subscriber.email


def test_the_description_is_openapi_3_1_and_names_the_sign_up_operation(client) -> None:
    response = client.get("/api/schema/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    document = response.json()
    assert document["openapi"] == "3.1.0"
    operation = document["paths"]["/api/v1/subscriptions"]["post"]
    assert set(operation["responses"]) == {"202", "400", "413", "429", "503"}
    assert document["servers"] == [{"url": "https://news.example.org"}]
