"""Subscriber imports in the admin: upload a file for a newsletter, watch its progress
bar, download the report of skipped rows. The work runs on a Celery worker."""

import uuid
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from subscriptions.admin.common import actor
from subscriptions.lists.imports import jobs
from subscriptions.models import Newsletter, SubscriberImport, Subscription


class ImportForm(forms.Form):
    # Not archived ones: they take no new subscribers.
    newsletter = forms.ModelChoiceField(queryset=Newsletter.objects.current())
    file = forms.FileField(
        help_text="CSV (or .csv.gz) with an <code>email</code> column; optional columns: "
        "<code>name</code>, <code>status</code> (a row marked unsubscribed is skipped, "
        "one marked pending stays pending), <code>consent_basis</code>, "
        "<code>signed_up_at</code>, <code>signup_ip</code>; any other column is kept with "
        "the subscriber."
    )
    status = forms.ChoiceField(
        choices=list(SubscriberImport._meta.get_field("target_status").choices or []),
        initial=Subscription.Status.PENDING,
        widget=forms.RadioSelect,
        help_text="Pending sends each new subscriber a confirmation email, at "
        "IMPORT_CONFIRMATIONS_PER_MINUTE.",
    )
    consent_basis = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='Required for active: how these people consented (e.g. "double opt-in '
        'on our previous platform, 2019-2026"). It is recorded for every row.',
    )

    def clean_file(self) -> object:
        upload = self.cleaned_data["file"]
        if upload.size > settings.IMPORT_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {settings.IMPORT_MAX_UPLOAD_BYTES // 2**20} MB."
            )
        return upload

    def clean(self) -> dict:
        data = super().clean() or {}
        if (
            data.get("status") == Subscription.Status.ACTIVE
            and not (data.get("consent_basis") or "").strip()
        ):
            self.add_error("consent_basis", "Say how these people consented.")
        return data


@admin.register(SubscriberImport)
class SubscriberImportAdmin(admin.ModelAdmin):
    list_display = [
        "original_name",
        "newsletter",
        "target_status",
        "state",
        "progress",
        "added",
        "skipped",
        "created_by",
        "created_at",
    ]
    list_filter = ["state", "newsletter"]
    list_select_related = ["newsletter"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Progress")
    def progress(self, job: SubscriberImport) -> str:
        return format_html(
            '<progress max="100" value="{}">{}%</progress>', job.percent, job.percent
        )

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/status/", view(self.status_view), name="subscriptions_import_status"),
            path("<int:pk>/report/", view(self.report_view), name="subscriptions_import_report"),
            *super().get_urls(),
        ]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            upload = data["file"]
            stored = _store_upload(upload)
            try:
                with transaction.atomic():
                    job = jobs.start_import(
                        newsletter=data["newsletter"],
                        target_status=data["status"],
                        consent_basis=data["consent_basis"],
                        file_path=stored,
                        original_name=upload.name,
                        actor=actor(request),
                    )
            except jobs.ImportRefused as exc:
                stored.unlink(missing_ok=True)
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Importing {upload.name}.", messages.SUCCESS)
                return redirect(
                    reverse("admin:subscriptions_subscriberimport_change", args=[job.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Import subscribers",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/subscriptions/import_form.html", context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None
    ):
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(SubscriberImport.objects.select_related("newsletter"), pk=object_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import of {job.original_name}",
            "job": job,
            "opts": self.model._meta,
            "status_url": reverse("admin:subscriptions_import_status", args=[job.pk]),
            "report_url": reverse("admin:subscriptions_import_report", args=[job.pk]),
        }
        return TemplateResponse(request, "admin/subscriptions/import_detail.html", context)

    def status_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(SubscriberImport, pk=pk)
        return JsonResponse(
            {
                "state": job.state,
                # What the page shows for the state, in the editor's words.
                "state_label": job.get_state_display(),
                "phase": job.get_phase_display(),
                "percent": job.percent,
                "rows_read": job.rows_read,
                "added": job.added,
                "upgraded": job.upgraded,
                "already_subscribed": job.already_subscribed,
                "skipped": job.skipped,
                "confirmations_queued": job.confirmations_queued,
                "error": job.error,
            }
        )

    def report_view(self, request: HttpRequest, pk: int) -> HttpResponseBase:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(SubscriberImport, pk=pk)
        report = Path(job.report_path) if job.report_path else None
        if report is None or not report.is_file():
            raise Http404("This import has no report.")
        return FileResponse(
            report.open("rb"),
            as_attachment=True,
            filename=f"import-{job.pk}-skipped-rows.csv",
            content_type="text/csv; charset=utf-8",
        )


def _store_upload(upload: UploadedFile) -> Path:
    """Copy the upload where the workers read imports; the name is ours, never the
    uploader's (it becomes a path)."""
    directory = Path(settings.IMPORT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".csv.gz" if str(upload.name).lower().endswith(".gz") else ".csv"
    stored = directory / f"upload-{uuid.uuid4().hex}{suffix}"
    with stored.open("wb") as target:
        for piece in upload.chunks():
            target.write(piece)
    return stored
