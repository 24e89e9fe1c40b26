"""Reader-facing pages. Thin: parse the request, call a service, render a page."""

import logging

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from subscriptions import languages
from subscriptions.abuse import ratelimit
from subscriptions.abuse.ratelimit import RateLimited
from subscriptions.exceptions import TokenExpired, TokenInvalid
from subscriptions.models import Subscriber, Subscription
from subscriptions.privacy import personal_data
from subscriptions.privacy.personal_data import PrivacyAction
from subscriptions.signup import deferred_unsubscribes, selectors, services
from subscriptions.signup.addresses import canonical_mailbox, normalize_email
from subscriptions.signup.transitions import confirmation_prompt
from subscriptions.tokens import (
    confirmation_token,
    preferences_token,
    privacy_token,
    unsubscribe_token,
)
from subscriptions.web import outage
from subscriptions.web.form_body import checks_form_body, limits_body_size
from subscriptions.web.forms import SignupForm, SignupOutcome
from subscriptions.web.request_info import client_ip, client_network, consent_from_request

logger = logging.getLogger(__name__)

SUCCESS_MESSAGE = _(
    "Thank you for signing up for this newsletter. We've sent you a confirmation email."
)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The demo article page, with sign-up boxes the way a news site places them."""
    newsletters = list(selectors.public_newsletters())
    return render(
        request,
        "subscriptions/home.html",
        {"featured": newsletters[:1], "sidebar": newsletters[1:]},
    )


@require_GET
def newsletter_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "subscriptions/newsletter_list.html",
        {"newsletters": selectors.public_newsletters()},
    )


@require_GET
def newsletter_detail(request: HttpRequest, slug: str) -> HttpResponse:
    newsletter = selectors.public_newsletter(slug)
    if newsletter is None:
        return render(request, "subscriptions/not_found.html", status=404)
    return render(request, "subscriptions/newsletter_detail.html", {"newsletter": newsletter})


@require_GET
def choose_language(request: HttpRequest, code: str) -> HttpResponse:
    """The header's language links: remember the choice in a cookie, go back.

    Links rather than Django's set_language form, whose CSRF token would put a cookie
    on every page (and keep them out of shared caches); a forged link can only change
    the language someone reads in.
    """
    language = languages.supported(code)
    next_url = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = reverse("subscriptions:home")
    response = HttpResponseRedirect(next_url)
    if language is not None:
        languages.remember(response, language)
    return response


def rate_limited_message(retry_after: int) -> str:
    minutes = max(1, -(-retry_after // 60))
    if minutes == 1:
        return gettext("Too many sign-up attempts. Please try again in a minute.")
    return ngettext(
        "Too many sign-up attempts. Please try again in %(minutes)d minute.",
        "Too many sign-up attempts. Please try again in %(minutes)d minutes.",
        minutes,
    ) % {"minutes": minutes}


@checks_form_body
@require_POST
def signup(request: HttpRequest) -> HttpResponse:
    """The no-JavaScript path: POST, then redirect to the thank-you page."""
    return form_signup(request)


def form_signup(request: HttpRequest) -> HttpResponse:
    """Sign up from an HTML form post: our own pages' form, or the plain-HTML embed on
    another site (which cannot carry a fresh form token, so its reader confirms on our
    page first)."""
    ip = client_ip(request)
    # Both limits in one round trip, before the form reads the database (or asks a
    # challenge provider): the client's, and the mailbox's when the address is one.
    limits = [("form-ip", client_network(ip))]
    if (mailbox := mailbox_of(request.POST.get("email"))) is not None:
        limits.append(("form-email", mailbox))
    try:
        ratelimit.enforce_all(limits)
    except RateLimited as exc:
        response = render(
            request,
            "subscriptions/rate_limited.html",
            {"message": rate_limited_message(exc.retry_after)},
            status=429,
        )
        response["Retry-After"] = str(exc.retry_after)
        return response
    form = SignupForm(request.POST, remote_ip=ip)
    outcome = SignupOutcome.INVALID
    if form.is_valid():
        outcome = form.submit(request, source=Subscription.Source.FORM, caller_consent_text=False)
    if outcome is SignupOutcome.CONFIRM:
        # Nothing was stored: the reader confirms, with a fresh token.
        return render(
            request,
            "subscriptions/signup_confirm.html",
            {
                "form": form,
                "newsletters": form.cleaned_data["newsletters"],
                "action": languages.with_language(
                    reverse("subscriptions:signup"), languages.requested(request)
                ),
            },
        )
    if outcome is SignupOutcome.INVALID:
        return render(
            request,
            "subscriptions/signup_error.html",
            {
                "form": form,
                "newsletters": selectors.public_newsletters(),
                "chosen": request.POST.getlist("newsletters"),
            },
            status=400,
        )
    thanks_url = reverse("subscriptions:thanks")
    return HttpResponseRedirect(languages.with_language(thanks_url, languages.requested(request)))


def mailbox_of(email: object) -> str | None:
    """The mailbox a sign-up's address delivers to, for its rate limit, or None when it
    is no address (the form will say so)."""
    try:
        return canonical_mailbox(normalize_email(email))
    except ValidationError:
        return None


@require_GET
def thanks(request: HttpRequest) -> HttpResponse:
    return render(request, "subscriptions/thanks.html", {"message": SUCCESS_MESSAGE})


@limits_body_size
@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button and changes nothing (mail scanners follow links); POST confirms."""
    try:
        claim = confirmation_token.read_token(token)
    except TokenExpired:
        return render(request, "subscriptions/confirm_expired.html", {"token": token}, status=410)
    except TokenInvalid:
        return render(request, "subscriptions/token_invalid.html", status=400)
    subscriptions = list(
        Subscription.objects.filter(pk__in=claim.subscription_ids).select_related("newsletter")
    )
    if not subscriptions:
        return render(request, "subscriptions/token_invalid.html", status=400)
    prompt = confirmation_prompt([s.newsletter.name for s in subscriptions])
    if request.method == "GET":
        return render(request, "subscriptions/confirm.html", {"prompt": prompt, "token": token})
    consent = consent_from_request(request, consent_text=prompt)
    result = services.confirm_subscriptions(claim=claim, consent=consent)
    return render(request, "subscriptions/confirmed.html", {"result": result})


@limits_body_size
@require_POST
def confirm_resend(request: HttpRequest, token: str) -> HttpResponse:
    """From the expired-link page: send a fresh confirmation email (capped per address)."""
    try:
        claim = confirmation_token.read_token(token, allow_expired=True)
    except TokenInvalid:
        return render(request, "subscriptions/token_invalid.html", status=400)
    services.resend_confirmation(subscription_ids=claim.subscription_ids, actor="reader")
    return render(request, "subscriptions/thanks.html", {"message": SUCCESS_MESSAGE})


# RFC 8058 §3.1: the one-click POST comes from the mailbox provider, without cookies or
# a CSRF token; the signed token in the URL is the authorisation.
@csrf_exempt
@limits_body_size
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscription_id = unsubscribe_token.read_token(token)
    except TokenInvalid:
        return render(request, "subscriptions/token_invalid.html", status=400)
    if request.method == "GET":
        subscription = _subscription(subscription_id)
        if subscription is None:
            return render(request, "subscriptions/token_invalid.html", status=400)
        return render(
            request,
            "subscriptions/unsubscribe.html",
            {"subscription": subscription, "token": token, "issue_id": _issue_id(request)},
        )
    via = "one-click" if request.POST.get("List-Unsubscribe") == "One-Click" else "page"
    try:
        return _unsubscribe_now(request, subscription_id, via)
    except outage.DATABASE_UNAVAILABLE as exc:
        if not deferred_unsubscribes.record(subscription_id=subscription_id, via=via):
            raise  # nowhere to keep it: 503 with Retry-After, and the provider tries again
        logger.error(
            "database unavailable: an unsubscribe was kept in Redis to apply later (%s)",
            type(exc).__name__,
        )
        # Kept, not done: the page says so. Any 2xx ends the provider's part (RFC 8058).
        return render(request, "subscriptions/unsubscribe_kept.html", status=202)


def _issue_id(request: HttpRequest) -> int | None:
    """The issue whose link this is (`?issue=`), for its report; not signed: a reader
    can only misattribute their own unsubscribe."""
    raw = request.GET.get("issue", "")
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


def _subscription(subscription_id: int) -> Subscription | None:
    return Subscription.objects.select_related("newsletter").filter(pk=subscription_id).first()


def _unsubscribe_now(request: HttpRequest, subscription_id: int, via: str) -> HttpResponse:
    subscription = _subscription(subscription_id)
    if subscription is None:
        return render(request, "subscriptions/token_invalid.html", status=400)
    services.unsubscribe(
        subscription_id=subscription.pk, actor="reader", via=via, issue_id=_issue_id(request)
    )
    # RFC 8058 expects a plain 2xx for the one-click POST, not a redirect.
    return render(
        request,
        "subscriptions/unsubscribed.html",
        {
            "newsletter": subscription.newsletter,
            "preferences_token": preferences_token.make_token(subscription.subscriber_id),
        },
    )


@limits_body_size
@require_http_methods(["GET", "POST"])
def privacy_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The link from the email: GET shows what will happen (mail scanners follow
    links), POST does it."""
    try:
        claim = privacy_token.read_token(token)
    except TokenExpired:
        return render(request, "subscriptions/privacy_expired.html", status=410)
    except TokenInvalid:
        return render(request, "subscriptions/token_invalid.html", status=400)
    subscriber = Subscriber.objects.filter(pk=claim.subscriber_id).first()
    if subscriber is None or claim.action not in (PrivacyAction.EXPORT, PrivacyAction.ERASE):
        return render(request, "subscriptions/token_invalid.html", status=400)
    if request.method == "GET":
        return render(
            request,
            "subscriptions/privacy_confirm.html",
            {"erase": claim.action == PrivacyAction.ERASE, "token": token},
        )
    if claim.action == PrivacyAction.EXPORT:
        data = personal_data.export_data(subscriber_id=subscriber.pk, actor="reader")
        response = JsonResponse(data, json_dumps_params={"indent": 2})
        response["Content-Disposition"] = 'attachment; filename="my-newsletter-data.json"'
        return response
    personal_data.erase_subscriber(subscriber_id=subscriber.pk, actor="reader")
    return render(request, "subscriptions/privacy_erased.html")
