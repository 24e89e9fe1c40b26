"""Template helpers for pages that speak the reader's language.

`{% lang_url 'name' arg %}`: a URL that keeps the page's `?lang=`, for the forms on
pages reached from an email link, so the page after the button speaks the same.
`{{ subscriptions|join_names }}`: their newsletters' names, as a list in a sentence.
"""

from collections.abc import Iterable

from django import template
from django.urls import reverse
from django.utils.text import get_text_list
from django.utils.translation import gettext

from subscriptions import languages
from subscriptions.models import Subscription

register = template.Library()


@register.simple_tag(takes_context=True)
def lang_url(context: template.Context, viewname: str, *args: object) -> str:
    request = context.get("request")
    language = languages.requested(request) if request is not None else None
    return languages.with_language(reverse(viewname, args=args), language)


@register.filter
def join_names(subscriptions: Iterable[Subscription]) -> str:
    """ "A, B and C" in the active language."""
    return get_text_list([s.newsletter.name for s in subscriptions], gettext("and"))
