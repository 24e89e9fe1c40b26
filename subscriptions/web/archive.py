"""A public newsletter's archive: its sent issues as pages ("view in your browser")
and as an Atom feed. Nothing of any reader is in them: the links a copy carries for
its reader are put in only when it is sent. Private newsletters have no archive."""

from datetime import datetime

from django.contrib.syndication.views import Feed
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.feedgenerator import Atom1Feed
from django.views.decorators.http import require_GET

from subscriptions.issues import rendering
from subscriptions.issues import selectors as issue_selectors
from subscriptions.models import Issue, Newsletter
from subscriptions.signup import selectors

# Issues on the archive page and in the feed, newest first.
FEED_LENGTH = 20
PAGE_LENGTH = 100


@require_GET
def issue_archive(request: HttpRequest, slug: str) -> HttpResponse:
    newsletter = selectors.public_newsletter(slug)
    if newsletter is None:
        return render(request, "subscriptions/not_found.html", status=404)
    issues = [
        (issue, rendering.version(issue, translation.get_language()))
        for issue in issue_selectors.archived_issues(newsletter.pk)[:PAGE_LENGTH]
    ]
    return render(
        request,
        "subscriptions/issue_archive.html",
        {"newsletter": newsletter, "issues": issues},
    )


@require_GET
def issue_page(request: HttpRequest, slug: str, issue_id: int) -> HttpResponse:
    newsletter = selectors.public_newsletter(slug)
    issue = None
    if newsletter is not None:
        issue = issue_selectors.archived_issues(newsletter.pk).filter(pk=issue_id).first()
    if newsletter is None or issue is None:
        return render(request, "subscriptions/not_found.html", status=404)
    language = translation.get_language()
    return render(
        request,
        "subscriptions/issue_page.html",
        {
            "newsletter": newsletter,
            "issue": issue,
            "version": rendering.version(issue, language),
            "body": rendering.page_html(issue, language),
        },
    )


class IssueFeed(Feed):
    """An Atom feed of a public newsletter's sent issues."""

    feed_type = Atom1Feed

    def get_object(self, request: HttpRequest, slug: str) -> Newsletter:
        newsletter = selectors.public_newsletter(slug)
        if newsletter is None:
            raise Http404
        return newsletter

    def title(self, obj: Newsletter) -> str:
        return obj.name

    def subtitle(self, obj: Newsletter) -> str:
        return obj.host_line or obj.description[:200]

    def link(self, obj: Newsletter) -> str:
        return reverse("subscriptions:issue_archive", args=[obj.slug])

    def items(self, obj: Newsletter) -> list[Issue]:
        return list(issue_selectors.archived_issues(obj.pk)[:FEED_LENGTH])

    def item_title(self, item: Issue) -> str:
        return rendering.version(item, translation.get_language()).subject

    def item_description(self, item: Issue) -> str:
        return rendering.page_html(item, translation.get_language())

    def item_link(self, item: Issue) -> str:
        return reverse("subscriptions:issue", args=[item.newsletter.slug, item.pk])

    def item_pubdate(self, item: Issue) -> datetime | None:
        return item.finished_at

    def item_updateddate(self, item: Issue) -> datetime | None:
        return item.finished_at


issue_feed = require_GET(IssueFeed())
