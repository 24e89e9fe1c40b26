"""An issue as mail: Markdown to sanitised HTML with its CSS inlined, and a plain-text
part, in the reader's language.

Rendered once per issue and language (`Edition`), with stand-ins for each reader's own
links, which `for_reader` puts in: a million readers are a million string replacements,
not a million template renders.
"""

from dataclasses import dataclass
from functools import lru_cache
from html import escape

import css_inline
import nh3
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.html import strip_tags
from markdown_it import MarkdownIt

from subscriptions.models import Issue

# Stand-ins no editor's text contains by accident, for the links each reader gets.
UNSUBSCRIBE_URL = "https://unsubscribe.invalid/__reader__"
PREFERENCES_URL = "https://preferences.invalid/__reader__"

# What an issue's body may contain: text formatting, links, images, tables. No scripts,
# forms, frames or styles of the editor's own (mail clients drop most, and a pasted
# <style> could hide the footer's unsubscribe link).
_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "em", "figcaption", "figure", "h1", "h2",
    "h3", "h4", "hr", "i", "img", "li", "ol", "p", "pre", "s", "strong", "sub", "sup",
    "table", "tbody", "td", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
_URL_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # CommonMark with tables and strikethrough; raw HTML is let through to the sanitiser.
    return MarkdownIt("commonmark", {"html": True, "linkify": False}).enable(
        ["table", "strikethrough"]
    )


def body_html(markdown: str) -> str:
    """The body as HTML that is safe to show anyone: only `_TAGS`, and links only to
    http, https and mailto (a `javascript:` link loses its target)."""
    return nh3.clean(
        _markdown().render(markdown),
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer",
    )


def body_text(markdown: str) -> str:
    """The plain-text part: Markdown reads as text already; raw HTML tags go."""
    return strip_tags(markdown).strip()


@dataclass(frozen=True)
class Version:
    """What a reader of one language gets."""

    language: str
    subject: str
    preheader: str
    body: str


def version(issue: Issue, language: str) -> Version:
    """The Ukrainian version for a Ukrainian reader when the issue has one; else the
    default one, in the site's language."""
    if language == "uk" and issue.body_uk.strip() and issue.subject_uk.strip():
        return Version("uk", issue.subject_uk, issue.preheader_uk, issue.body_uk)
    return Version(settings.LANGUAGE_CODE, issue.subject, issue.preheader, issue.body)


@dataclass(frozen=True)
class Edition:
    """The issue rendered for one language, with stand-ins for the reader's links."""

    subject: str
    html: str
    text: str

    def for_reader(self, *, unsubscribe_url: str, preferences_url: str) -> tuple[str, str]:
        """(html, text) with this reader's links."""
        return self.with_fields(
            unsubscribe_html=escape(unsubscribe_url),
            preferences_html=escape(preferences_url),
            unsubscribe_text=unsubscribe_url,
            preferences_text=preferences_url,
        )

    def with_fields(
        self,
        *,
        unsubscribe_html: str,
        preferences_html: str,
        unsubscribe_text: str,
        preferences_text: str,
    ) -> tuple[str, str]:
        """(html, text) with the stand-ins replaced: by a reader's links, or by the
        provider's merge fields for a batch."""
        html = self.html.replace(UNSUBSCRIBE_URL, unsubscribe_html).replace(
            PREFERENCES_URL, preferences_html
        )
        text = self.text.replace(UNSUBSCRIBE_URL, unsubscribe_text).replace(
            PREFERENCES_URL, preferences_text
        )
        return html, text


def edition(issue: Issue, language: str, *, archive_url: str = "") -> Edition:
    """The issue as mail in `language`'s version."""
    chosen = version(issue, language)
    context = {
        "site_name": settings.SITE_NAME,
        "newsletter": issue.newsletter,
        "subject": chosen.subject,
        "preheader": chosen.preheader,
        "body": body_html(chosen.body),
        "body_text": body_text(chosen.body),
        "unsubscribe_url": UNSUBSCRIBE_URL,
        "preferences_url": PREFERENCES_URL,
        "archive_url": archive_url,
        "postal_address": settings.NEWSROOM_POSTAL_ADDRESS,
    }
    with translation.override(chosen.language):
        html = render_to_string("emails/issue.html", context)
        text = render_to_string("emails/issue.txt", context)
    return Edition(subject=chosen.subject, html=_inliner().inline(html), text=text)


@lru_cache(maxsize=1)
def _inliner() -> css_inline.CSSInliner:
    # The template's own <style> is all there is: nothing to fetch.
    return css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=True)


def page_html(issue: Issue, language: str) -> str:
    """The body alone, for the public archive page (no reader's links in it)."""
    return body_html(version(issue, language).body)
