"""The OpenAPI 3.1 description of the JSON API, served at /api/schema/.

Written by hand: the API is small, and a hand-written description says what callers
may rely on (one error shape for every field, 202 whatever the address's state)
rather than whatever a generator infers. The test suite runs schemathesis against it,
so a response that drifts from this description fails the build.
"""

from typing import Any

from django.conf import settings

from subscriptions.signup.addresses import MAX_EMAIL_LENGTH
from subscriptions.signup.transitions import MAX_CONSENT_TEXT_LENGTH
from subscriptions.web.forms import MAX_NEWSLETTERS_PER_SIGNUP

_ERRORS = {
    "type": "object",
    "required": ["errors"],
    "additionalProperties": False,
    "properties": {
        "errors": {
            "type": "object",
            "description": 'Messages per field; "__all__" for the request as a whole.',
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "form_token": {
            "type": "string",
            "description": "Only with an error on `form_token`: nothing was signed up, "
            "because the token was missing, sent too soon after the form was shown, too "
            "old, or used for another address. Show the message and send again with this "
            "token when the reader confirms.",
        },
    },
    "example": {"errors": {"email": ["Please, enter correct email address"]}},
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait.",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _error_response(description: str, headers: dict | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _signup_request() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["email", "newsletters", "form_token"],
        "properties": {
            "email": {
                "type": "string",
                "format": "email",
                "maxLength": MAX_EMAIL_LENGTH,
                "example": "reader@example.org",
            },
            "newsletters": {
                "type": "array",
                "description": "Slugs of public newsletters.",
                "minItems": 1,
                "maxItems": MAX_NEWSLETTERS_PER_SIGNUP,
                "items": {"type": "string"},
                "example": ["explaining-ukraine"],
            },
            "page_url": {
                "type": ["string", "null"],
                "description": "The page the form was shown on, kept as proof of consent.",
            },
            "form_token": {
                "type": "string",
                "description": "From GET /api/v1/form-token, fetched when the form is shown. "
                "Good for one address, from `min_seconds` after it was issued to an hour.",
            },
            "consent_text": {
                "type": ["string", "null"],
                "maxLength": MAX_CONSENT_TEXT_LENGTH,
                "description": "The words your form showed the reader, kept as proof of "
                "consent; our own wording is recorded when it is left out.",
            },
            "lang": {
                "description": "The reader's language (a code such as \"uk\"): the answer's "
                "messages and the subscriber's emails use it when the site speaks it, "
                "else Accept-Language decides. Anything else is ignored.",
            },
            "website": {
                "description": "Honeypot: leave it out. Any value but null or an empty "
                "string is answered as a success, and nothing is stored.",
            },
        },
    }


def api_description() -> dict[str, Any]:
    """The document, with the site's own origin as the server."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{settings.SITE_NAME} newsletter sign-up API",
            "version": "1",
            "description": "Sign readers up from the newsroom's other sites. No cookies or "
            "credentials; cross-origin calls are allowed from CORS_ALLOWED_ORIGINS.",
        },
        "servers": [{"url": settings.SITE_URL}],
        "paths": {
            "/api/v1/subscriptions": {
                "post": {
                    "operationId": "createSubscription",
                    "summary": "Sign an address up to one or more newsletters",
                    "description": "The answer is the same whether the address is new, "
                    "pending or already active, so it tells nobody who subscribes. A "
                    "confirmation email follows unless the address's daily cap is reached.",
                    "parameters": [
                        {
                            "name": "lang",
                            "in": "query",
                            "required": False,
                            "description": "The reader's language, as in the body. On the "
                            "URL it also reaches the answers given when the body cannot be "
                            "read; the embeds send both.",
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/SignupRequest"}
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Accepted; a confirmation email is on its way.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/SignupAccepted"}
                                }
                            },
                        },
                        "400": _error_response(
                            "Invalid input: not a JSON object, a bad address, an unknown "
                            "newsletter, a failed challenge; or a form token that may not "
                            "be a person's (then with a fresh `form_token`)."
                        ),
                        "413": _error_response("The request body is too large."),
                        "429": _error_response(
                            "Too many sign-ups from this client or for this address.",
                            headers=_RETRY_AFTER,
                        ),
                        "503": _error_response(
                            "Briefly unavailable: our database could not be reached. Send "
                            "the same request again after Retry-After; a repeated sign-up "
                            "is answered and stored as one.",
                            headers=_RETRY_AFTER,
                        ),
                    },
                }
            },
            "/api/v1/form-token": {
                "get": {
                    "operationId": "getFormToken",
                    "summary": "A fresh form token for a sign-up form",
                    "description": "Fetch one when the form is shown (never cache it): "
                    "the sign-up must come at least `min_seconds` later.",
                    "responses": {
                        "200": {
                            "description": "A token good for one address for an hour.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/FormToken"}
                                }
                            },
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "SignupRequest": _signup_request(),
                "SignupAccepted": {
                    "type": "object",
                    "required": ["status", "message"],
                    "properties": {
                        "status": {"type": "string", "enum": ["pending"]},
                        "message": {"type": "string"},
                    },
                },
                "Errors": _ERRORS,
                "FormToken": {
                    "type": "object",
                    "required": ["form_token", "min_seconds"],
                    "additionalProperties": False,
                    "properties": {
                        "form_token": {"type": "string"},
                        "min_seconds": {"type": "number", "minimum": 0},
                    },
                },
            }
        },
    }
