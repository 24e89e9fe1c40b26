"""The reader's own page, reached only through links mailed to them: which newsletters
they receive, and asking for their data. Thin: read the link, call `preferences` or
`privacy`, say truthfully what happened (see `preferences` for what a link may do)."""

from email.utils import parseaddr

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from newsroom.log_privacy import mask_personal_data
from subscriptions import languages
from subscriptions.exceptions import TokenInvalid
from subscriptions.models import Newsletter, Subscriber, Subscription
from subscriptions.privacy import personal_data
from subscriptions.privacy.personal_data import PrivacyAction
from subscriptions.signup import preferences, selectors
from subscriptions.tokens import preferences_token
from subscriptions.web.form_body import limits_body_size
from subscriptions.web.forms import PreferencesForm
from subscriptions.web.request_info import consent_from_request

Status = Subscription.Status
ON = (Status.ACTIVE, Status.PENDING)


@limits_body_size
@require_http_methods(["GET", "POST"])
def preferences_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        claim = preferences_token.read_token(token)
    except TokenInvalid:
        return render(request, "subscriptions/token_invalid.html", status=400)
    subscriber = get_object_or_404(Subscriber, pk=claim.subscriber_id)
    may_add = claim.stands_for_the_reader
    offered: list[Newsletter] = [n for n, _ in selectors.preferences_for(subscriber)]
    context: dict[str, object] = {}
    if request.method == "POST" and request.POST.get("action") == "fresh_link":
        context["fresh_link"] = preferences.send_fresh_link(subscriber_id=subscriber.pk).value
    elif request.method == "POST":
        form = PreferencesForm(request.POST, offered=offered)
        if form.is_valid():
            context["outcome"] = preferences.update_preferences(
                subscriber_id=subscriber.pk,
                wanted_newsletter_ids=set(form.cleaned_data["newsletters"]),
                offered_newsletters=offered,
                consent=consent_from_request(request),
                may_add=may_add,
            )
            context["saved"] = True
    rows = selectors.preferences_for(subscriber)
    return render(
        request,
        "subscriptions/preferences.html",
        {
            **context,
            # Whoever holds the link sees which address it is for, not the address.
            "masked_email": mask_personal_data(subscriber.email),
            "rows": [
                (n, s, s is not None and s.status in (Status.ACTIVE, Status.PENDING))
                for n, s in rows
            ],
            "token": token,
            "may_add": may_add,
            "max_age_days": settings.PREFERENCES_LINK_MAX_AGE_DAYS,
            "stopped": (stopped := preferences.mail_stopped(subscriber)) and stopped.value,
            "contact_email": parseaddr(settings.DEFAULT_FROM_EMAIL)[1],
            "privacy": request.GET.get("privacy", ""),
        },
    )


@limits_body_size
@require_POST
def privacy_request(request: HttpRequest, token: str) -> HttpResponse:
    """From the preferences page: mail a link that confirms the download or deletion,
    unless the address's mail server refuses our mail (then the page says so)."""
    try:
        subscriber_id = preferences_token.read_token(token).subscriber_id
    except TokenInvalid:
        return render(request, "subscriptions/token_invalid.html", status=400)
    action = request.POST.get("action")
    if action not in (PrivacyAction.EXPORT, PrivacyAction.ERASE):
        return render(request, "subscriptions/token_invalid.html", status=400)
    if not Subscriber.objects.filter(pk=subscriber_id).exists():
        return render(request, "subscriptions/token_invalid.html", status=400)
    # The same answer whether or not today's cap let the email go.
    answer = personal_data.request_by_email(subscriber_id=subscriber_id, action=action)
    shown = "undeliverable" if answer is personal_data.Requested.UNDELIVERABLE else "sent"
    preferences_url = reverse("subscriptions:preferences", args=[token]) + f"?privacy={shown}"
    return HttpResponseRedirect(
        languages.with_language(preferences_url, languages.requested(request))
    )
