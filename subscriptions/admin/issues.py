"""Issues in the admin: write one, preview it as it will be sent, send a test to
oneself, then send it (or schedule it) after a step that names its audience, and watch
it go out. Sending, scheduling, pausing and cancelling need the `send_issue`
permission; without it an editor drafts and tests."""

from datetime import datetime

from csp.decorators import csp
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.clickjacking import xframe_options_sameorigin

from subscriptions.admin.common import actor
from subscriptions.exceptions import IssueInvalid, IssueNotSendable
from subscriptions.issues import copies, rendering, selectors, services
from subscriptions.models import Issue

SEND_PERMISSION = "subscriptions.send_issue"
_FRAMED_MAIL_POLICY = {
    "default-src": ["'none'"],
    "style-src": ["'unsafe-inline'"],
    "img-src": ["https:", "data:"],
    "frame-ancestors": ["'self'"],
}


class IssueForm(forms.ModelForm):
    class Meta:
        model = Issue
        fields = [
            "newsletter",
            "subject",
            "preheader",
            "body",
            "subject_uk",
            "preheader_uk",
            "body_uk",
        ]
        widgets = {
            "body": forms.Textarea(attrs={"rows": 24, "class": "vLargeTextField"}),
            "body_uk": forms.Textarea(attrs={"rows": 12, "class": "vLargeTextField"}),
        }

    def clean(self) -> dict:
        data = super().clean() or {}
        if "subject" not in self.fields:
            return data  # a sent issue: shown, not edited
        try:
            services.check_content(subject=data.get("subject") or "", body=data.get("body") or "")
        except IssueInvalid as exc:
            for field, message in exc.errors.items():
                if field not in self.errors:
                    self.add_error(field, message)
        return data


class SendForm(forms.Form):
    """When: now, or a time in the newsroom's time zone."""

    when = forms.ChoiceField(
        choices=[("now", "Send now"), ("later", "Schedule")], widget=forms.RadioSelect
    )
    at = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["at"].help_text = f"In the newsroom's time zone, {settings.TIME_ZONE}."

    def clean(self) -> dict:
        data = super().clean() or {}
        if data.get("when") == "later" and not data.get("at"):
            self.add_error("at", "Choose when to send it.")
        return data


@admin.register(Issue)
class IssueAdmin(admin.ModelAdmin):
    form = IssueForm
    list_display = ["subject", "newsletter", "status", "when", "audience", "progress_bar"]
    list_filter = ["status", "newsletter"]
    list_select_related = ["newsletter"]
    search_fields = ["subject"]
    change_form_template = "admin/subscriptions/issue/change_form.html"

    def get_readonly_fields(self, request: HttpRequest, obj: Issue | None = None) -> list[str]:
        # What went out stays as it went out.
        if obj is not None and obj.status not in (Issue.Status.DRAFT, Issue.Status.SCHEDULED):
            return list(IssueForm.Meta.fields)
        return []

    def has_delete_permission(self, request: HttpRequest, obj: Issue | None = None) -> bool:
        return obj is None or obj.status == Issue.Status.DRAFT

    def save_model(self, request: HttpRequest, obj: Issue, form: forms.Form, change: bool) -> None:
        """Through the issue's services: a draft is created, or rewritten only while it
        is one (a Save that lands after sending started changes nothing, and says so)."""
        # A sent issue's form has no fields: what went out is shown, not edited.
        written = {n: form.cleaned_data[n] for n in services.WRITTEN if n in form.cleaned_data}
        if change:
            try:
                services.edit_issue(
                    issue_id=obj.pk,
                    changes={name: written[name] for name in form.changed_data},
                    actor=actor(request),
                )
            except (IssueNotSendable, IssueInvalid) as exc:
                request._issue_not_saved = str(exc)  # type: ignore[attr-defined]
            return
        created = services.create_issue(actor=actor(request), **written)
        obj.pk, obj.created_by, obj._state.adding = created.pk, created.created_by, False

    # No "changed" entry in the admin's history for a save that changed nothing (Django
    # ignores what this returns; the stubs say it is always an entry).
    def log_change(self, request: HttpRequest, obj: object, message: object) -> object:  # type: ignore[override]
        if getattr(request, "_issue_not_saved", None):
            return None
        return super().log_change(request, obj, message)

    def response_change(self, request: HttpRequest, obj: Issue) -> HttpResponse:
        refusal = getattr(request, "_issue_not_saved", None)
        if refusal:
            self.message_user(request, refusal, messages.ERROR)
            return redirect(reverse("admin:subscriptions_issue_change", args=[obj.pk]))
        return super().response_change(request, obj)

    @admin.display(description="When", ordering="scheduled_at")
    def when(self, issue: Issue) -> str:
        moment = issue.finished_at or issue.started_at or issue.scheduled_at
        return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else "—"

    @admin.display(description="Progress")
    def progress_bar(self, issue: Issue) -> str:
        if issue.status in (Issue.Status.DRAFT, Issue.Status.SCHEDULED):
            return "—"
        # A sent issue has nothing left; counting its copies on every row of the list
        # would read a million rows per issue.
        done = (
            100 if issue.status == Issue.Status.SENT else selectors.progress(issue.pk).done_percent
        )
        return format_html('<progress max="100" value="{}">{}%</progress>', done, done)

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/preview/", view(self.preview_view), name="subscriptions_issue_preview"),
            path(
                "<int:pk>/preview/html/", view(self.preview_html), name="subscriptions_issue_html"
            ),
            path("<int:pk>/test/", view(self.send_test_view), name="subscriptions_issue_test"),
            path("<int:pk>/send/", view(self.send_view), name="subscriptions_issue_send"),
            path("<int:pk>/control/", view(self.control_view), name="subscriptions_issue_control"),
            path(
                "<int:pk>/progress/", view(self.progress_view), name="subscriptions_issue_progress"
            ),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None
    ):
        issue = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if issue is not None:
            context.update(
                issue=issue,
                can_send=request.user.has_perm(SEND_PERMISSION),
                progress=selectors.progress(issue.pk),
                report=selectors.report(issue.pk),
                progress_url=reverse("admin:subscriptions_issue_progress", args=[issue.pk]),
                note=_note(issue),
            )
        return super().change_view(request, object_id, form_url, extra_context=context)

    # --- preview and test ----------------------------------------------------------------

    def _issue(self, request: HttpRequest, pk: int) -> Issue:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(Issue.objects.select_related("newsletter"), pk=pk)

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        issue = self._issue(request, pk)
        language = request.GET.get("language", settings.LANGUAGE_CODE)
        edition = rendering.edition(issue, language, archive_url=copies.archive_url(issue))
        _html, text = _sample(edition)
        html_url = reverse("admin:subscriptions_issue_html", args=[issue.pk])
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview: {edition.subject}",
            "opts": self.model._meta,
            "issue": issue,
            "subject": edition.subject,
            "text": text,
            "html_url": f"{html_url}?language={language}",
            "language": language,
            "has_ukrainian": bool(issue.body_uk.strip() and issue.subject_uk.strip()),
        }
        return TemplateResponse(request, "admin/subscriptions/issue/preview.html", context)

    @method_decorator(xframe_options_sameorigin)
    @method_decorator(csp(_FRAMED_MAIL_POLICY))
    def preview_html(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The HTML part alone, for the preview's frames: mail's inline styles allowed,
        nothing else (no scripts, no requests but images), framed only by our pages."""
        issue = self._issue(request, pk)
        edition = rendering.edition(
            issue, request.GET.get("language", ""), archive_url=copies.archive_url(issue)
        )
        html, _text = _sample(edition)
        return HttpResponse(html)

    def send_test_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """POST: the issue to the editor's own address, through the configured provider."""
        issue = self._issue(request, pk)
        if request.method != "POST":
            return redirect(reverse("admin:subscriptions_issue_change", args=[pk]))
        address = getattr(request.user, "email", "")
        if not address:
            self.message_user(
                request, "Your user has no email address to send a test to.", messages.ERROR
            )
            return redirect(reverse("admin:subscriptions_issue_change", args=[pk]))
        try:
            services.send_test(issue, to=address)
        except Exception as exc:  # noqa: BLE001 - shown to the editor
            self.message_user(
                request, f"The test was not sent: {type(exc).__name__}: {exc}", messages.ERROR
            )
        else:
            self.message_user(request, f"A test copy was sent to {address}.", messages.SUCCESS)
        return redirect(reverse("admin:subscriptions_issue_change", args=[pk]))

    # --- sending -------------------------------------------------------------------------

    def send_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """A step that names the audience before anything is sent."""
        issue = self._issue(request, pk)
        if not request.user.has_perm(SEND_PERMISSION):
            raise PermissionDenied
        form = SendForm(request.POST or None, initial={"when": "now"})
        if request.method == "POST" and form.is_valid():
            try:
                if form.cleaned_data["when"] == "now":
                    services.send_now(issue_id=issue.pk, actor=actor(request))
                    self.message_user(request, "Sending.", messages.SUCCESS)
                else:
                    at = _in_newsroom_time(form.cleaned_data["at"])
                    services.schedule(issue_id=issue.pk, at=at, actor=actor(request))
                    self.message_user(
                        request,
                        f"Scheduled for {timezone.localtime(at):%Y-%m-%d %H:%M}.",
                        messages.SUCCESS,
                    )
                return redirect(reverse("admin:subscriptions_issue_change", args=[pk]))
            except IssueInvalid as exc:
                for field, error in exc.errors.items():
                    form.add_error("at" if field == "scheduled_at" else None, error)
            except IssueNotSendable as exc:
                form.add_error(None, str(exc))
        context = {
            **self.admin_site.each_context(request),
            "title": "Send this issue",
            "opts": self.model._meta,
            "issue": issue,
            "form": form,
            "audience": services.audience_count(issue.newsletter),
        }
        return TemplateResponse(request, "admin/subscriptions/issue/send.html", context)

    def control_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """POST pause, resume or cancel."""
        issue = self._issue(request, pk)
        if request.method != "POST" or not request.user.has_perm(SEND_PERMISSION):
            raise PermissionDenied
        change = {"pause": services.pause, "resume": services.resume, "cancel": services.cancel}
        action = change.get(request.POST.get("action", ""))
        if action is None:
            self.message_user(request, "Unknown action.", messages.ERROR)
        else:
            try:
                action(issue_id=issue.pk, actor=actor(request))
            except IssueNotSendable as exc:
                self.message_user(request, str(exc), messages.ERROR)
        return redirect(reverse("admin:subscriptions_issue_change", args=[pk]))

    def progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        issue = self._issue(request, pk)
        progress = selectors.progress(issue.pk)
        waiting = _waiting(issue)
        return JsonResponse(
            {
                "status": issue.status,
                "state": issue.status,  # the page reloads when it changes
                "status_label": issue.get_status_display(),
                "percent": progress.done_percent,
                "audience": progress.audience,
                "queued": progress.queued,
                "sent": progress.sent,
                "failed": progress.failed,
                "skipped": progress.skipped,
                "left": progress.left,
                "sent_more_than_once": progress.sent_more_than_once,
                # For the provider (a refusal) or for the hourly cap: last_error says.
                "waiting": waiting,
                "last_error": issue.last_error,
                "note": _note(issue),
            }
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Issue]:
        return super().get_queryset(request).select_related("newsletter")


def _waiting(issue: Issue) -> bool:
    """Put off for the provider (a refusal) or for the hourly cap; last_error says which."""
    return bool(issue.paused_until and issue.paused_until > timezone.now())


def _note(issue: Issue) -> str:
    """Why an issue is not moving, while it is not: waiting, or paused after refusals."""
    stalled = _waiting(issue) or issue.status == Issue.Status.PAUSED
    return issue.last_error if stalled else ""


def _sample(edition: rendering.Edition) -> tuple[str, str]:
    """The preview's reader links: they go nowhere, so a click in it changes nothing."""
    return edition.for_reader(unsubscribe_url="#unsubscribe", preferences_url="#preferences")


def _in_newsroom_time(at: datetime) -> datetime:
    """The admin's time field is in the newsroom's time zone (TIME_ZONE)."""
    if timezone.is_naive(at):
        return timezone.make_aware(at)
    return at
