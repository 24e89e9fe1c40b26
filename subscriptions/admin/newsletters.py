"""Newsletters, with subscription counts per status; archived rather than deleted."""

from collections.abc import Callable, Iterable

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html, format_html_join

from subscriptions import embeds, insight, selectors
from subscriptions.models import Newsletter, Subscription


@admin.register(Newsletter)
class NewsletterAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "host_line",
        "cadence",
        "is_public",
        "double_opt_in",
        "position",
        *(f"{status}_count" for status in Subscription.Status.values),
    ]
    list_editable = ["position"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug", "host_line"]
    change_list_template = "admin/subscriptions/newsletter/change_list.html"
    readonly_fields = ["embed_code"]

    @admin.display(description="Embed code")
    def embed_code(self, newsletter: Newsletter) -> str:
        """Copy-paste HTML for this newsletter's sign-up box on another site."""
        if newsletter.pk is None:
            return "Save the newsletter first."
        return _signup_snippets([newsletter])

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
            "dashboard": insight.dashboard(),
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


def _count_column(status: Subscription.Status) -> Callable[[NewsletterAdmin, Newsletter], int]:
    @admin.display(description=status.label, ordering=f"{status.value}_count")
    def column(model_admin: NewsletterAdmin, obj: Newsletter) -> int:
        return getattr(obj, f"{status.value}_count")

    return column


# One column per status, reading the counts `newsletters_with_status_counts` annotates.
for _status in Subscription.Status:
    setattr(NewsletterAdmin, f"{_status.value}_count", _count_column(_status))
