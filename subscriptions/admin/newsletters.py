"""Newsletters, with subscription counts per status; archived rather than deleted."""

from collections.abc import Callable, Iterable

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html, format_html_join

from subscriptions.admin import dashboard
from subscriptions.models import Newsletter, Subscription
from subscriptions.models.subscriptions import SubscriptionStatus
from subscriptions.signup import archiving, selectors
from subscriptions.web import embeds


class ArchivedFilter(admin.SimpleListFilter):
    title = "archived"
    parameter_name = "archived"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("no", "Current"), ("yes", "Archived")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("no", "yes"):
            return queryset.filter(archived_at__isnull=self.value() == "no")
        return queryset


@admin.register(Newsletter)
class NewsletterAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "host_line",
        "cadence",
        "is_public",
        "double_opt_in",
        "position",
        "archived_at",
        *(f"{status}_count" for status in Subscription.Status.values),
    ]
    list_editable = ["position"]
    list_filter = [ArchivedFilter]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug", "host_line"]
    change_list_template = "admin/subscriptions/newsletter/change_list.html"
    # archived_at changes only through the actions, which take the lock sign-ups wait for.
    readonly_fields = ["archived_at", "embed_code"]
    actions = ["archive_newsletters", "unarchive_newsletters"]

    @admin.display(description="Embed code")
    def embed_code(self, newsletter: Newsletter) -> str:
        """Copy-paste HTML for this newsletter's sign-up box on another site."""
        if newsletter.pk is None:
            return "Save the newsletter first."
        if newsletter.archived_at is not None:
            return "Archived: readers cannot sign up. Unarchive it to embed its form."
        return _signup_snippets([newsletter])

    @admin.action(description="Archive (hide from readers, keep every subscription)")
    def archive_newsletters(self, request: HttpRequest, queryset: QuerySet[Newsletter]) -> None:
        changed = archiving.archive_newsletters(newsletter_ids=_ids(queryset))
        if not changed:
            self.message_user(
                request, "Nothing to do: the selected newsletters were archived already."
            )
            return
        for newsletter in changed:
            self.log_change(request, newsletter, "Archived.")
        them = "it" if len(changed) == 1 else "them"
        self.message_user(
            request,
            f"Archived {_named(changed)}. Readers no longer see {them} and nobody can be "
            "added; every subscription and its history is kept.",
            messages.SUCCESS,
        )

    @admin.action(description="Unarchive (back as it was, with its subscribers)")
    def unarchive_newsletters(self, request: HttpRequest, queryset: QuerySet[Newsletter]) -> None:
        changed = archiving.unarchive_newsletters(newsletter_ids=_ids(queryset))
        if not changed:
            self.message_user(
                request, "Nothing to do: none of the selected newsletters was archived."
            )
            return
        for newsletter in changed:
            self.log_change(request, newsletter, "Unarchived.")
        self.message_user(
            request,
            f"Unarchived {_named(changed)}. "
            f"{'It is' if len(changed) == 1 else 'They are'} back as before, subscribers and all.",
            messages.SUCCESS,
        )

    def get_deleted_objects(self, objs: Iterable[Newsletter], request: HttpRequest) -> tuple:
        """A newsletter anyone subscribed to is protected (its readers' proof of consent
        and event log). Say so in one counted line per newsletter: Django's own list
        would load and show every subscription, and a list may have a million."""
        newsletters = list(objs)
        counts = dict(
            Subscription.objects.filter(newsletter__in=newsletters)
            .order_by()
            .values("newsletter")
            .annotate(n=Count("pk"))
            .values_list("newsletter", "n")
        )
        if not counts:
            return super().get_deleted_objects(newsletters, request)
        protected = [
            format_html(
                "{}: {} subscription{}, with their proof of consent and event log. "
                "Archive the newsletter instead.",
                newsletter.name,
                counts[newsletter.pk],
                "" if counts[newsletter.pk] == 1 else "s",
            )
            for newsletter in newsletters
            if newsletter.pk in counts
        ]
        return [], {}, set(), protected

    def get_queryset(self, request: HttpRequest) -> QuerySet[Newsletter]:
        return selectors.newsletters_with_status_counts()

    def get_urls(self) -> list:
        return [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="subscriptions_dashboard",
            ),
            path(
                "embeds/",
                self.admin_site.admin_view(self.embeds_view),
                name="subscriptions_embeds",
            ),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        """Per newsletter: counts, confirmation rate, who left lately, 90 days of growth."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Newsletters at a glance",
            "opts": self.model._meta,
            "dashboard": dashboard.dashboard(),
        }
        return TemplateResponse(request, "admin/subscriptions/dashboard.html", context)

    def embeds_view(self, request: HttpRequest) -> TemplateResponse:
        """Embed code for a form with several public newsletters (every one, or those
        ticked: `?newsletters=slug&newsletters=slug`), and for the goal banner."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        public = list(selectors.public_newsletters())
        ticked = set(request.GET.getlist("newsletters"))
        # Nothing (or nothing public) ticked gives the form with every newsletter.
        chosen = [newsletter for newsletter in public if newsletter.slug in ticked] or public
        context = {
            **self.admin_site.each_context(request),
            "title": "Embed on other sites",
            "opts": self.model._meta,
            "choices": [(newsletter, newsletter in chosen) for newsletter in public],
            "multi": _signup_snippets(chosen),
            "goal": _goal_snippets(),
        }
        return TemplateResponse(request, "admin/subscriptions/embeds.html", context)


def _ids(queryset: QuerySet[Newsletter]) -> list[int]:
    # The services lock the rows themselves; the admin's queryset, grouped for its
    # per-status counts, could not be locked.
    return list(queryset.values_list("pk", flat=True))


def _named(newsletters: list[Newsletter]) -> str:
    count = f"{len(newsletters)} newsletter{'' if len(newsletters) == 1 else 's'}"
    return f"{count}: {', '.join(newsletter.name for newsletter in newsletters)}"


def _signup_snippets(newsletters: list[Newsletter]) -> str:
    """Per language the site speaks, the script snippet and the plain-HTML one."""
    boxes = []
    for code, name in settings.LANGUAGES:
        boxes.append(
            _snippet_box(
                f"{name}, script: renders the form into the page, which answers inline",
                f"Script embed code, {name}",
                embeds.signup_script_snippet(newsletters, language=code),
                rows=5,
            )
        )
        boxes.append(
            _snippet_box(
                f"{name}, plain HTML: works with JavaScript off; the reader lands on our "
                "thank-you page",
                f"Plain HTML embed code, {name}",
                embeds.signup_html_snippet(newsletters, language=code),
                rows=14,
            )
        )
    return format_html_join("", "{}", ((box,) for box in boxes))


def _goal_snippets() -> str:
    """Per language the site speaks, the goal banner's snippet."""
    return format_html_join(
        "",
        "{}",
        (
            (_snippet_box(name, f"Embed code, {name}", embeds.goal_snippet(language=code), rows=5),)
            for code, name in settings.LANGUAGES
        ),
    )


def _snippet_box(title: str, label: str, code: str, *, rows: int) -> str:
    return format_html(
        '<p><strong>{}</strong></p><textarea class="vLargeTextField embed-code" rows="{}" '
        'readonly aria-label="{}">{}</textarea>',
        title,
        rows,
        label,
        code,
    )


def _count_column(status: SubscriptionStatus) -> Callable[[NewsletterAdmin, Newsletter], int]:
    @admin.display(description=status.label, ordering=f"{status.value}_count")
    def column(model_admin: NewsletterAdmin, obj: Newsletter) -> int:
        return getattr(obj, f"{status.value}_count")

    return column


# One column per status, reading the counts `newsletters_with_status_counts` annotates.
for _status in Subscription.Status:
    setattr(NewsletterAdmin, f"{_status.value}_count", _count_column(_status))
