"""Teacher pages. Every object is looked up within the teacher's own classrooms (else 404)."""

import mimetypes

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from classifier.models import ModelVersion
from classifier.services import active_model_version
from ml.quantify import MIN_FACES

from . import charts, services
from .api.serializers import PhotoSerializer
from .api.views import API_READ_WINDOW
from .choices import AccessAction, PhotoStatus, Retention, SessionKind
from .forms import (
    ActivitiesForm,
    ClassroomForm,
    ConsentForm,
    DateRangeForm,
    DetectionModeForm,
    FaceDetailForm,
    RetentionForm,
    SessionForm,
    SessionNoteForm,
)
from .models import AccessRecord, Classroom, Photo, Session

# A face whose top class probability is below this is shown as a low-confidence estimate.
LOW_CONFIDENCE = 0.5


def _classroom(request, pk) -> Classroom:
    return get_object_or_404(Classroom, pk=pk, owner=request.user)


def _session(request, pk) -> Session:
    return get_object_or_404(
        Session.objects.select_related("classroom"), pk=pk, classroom__owner=request.user
    )


def _model_note(session_ids) -> dict:
    """The model versions whose results a page shows, for its disclaimer (`_note.html`).

    The versions that produced the results, not the active one: a session analysed before a
    promotion keeps the old model's results and error rates. Pages without results yet name
    the active model, which will produce them. Each version carries its share of the page's
    faces (`share`); `flagged` lists the broken ones among them and the active one, whose
    warning the page shows instead of any accuracy.
    """
    used = services.combined_versions(services.model_versions_used(session_ids))
    shares = {version["id"]: version["share"] for version in used}
    versions = list(ModelVersion.objects.filter(pk__in=shares).order_by("pk"))
    for version in versions:
        version.share = shares[version.pk]
    active = active_model_version()
    flagged = [v for v in versions if v.card.broken]
    if active is not None and active.card.broken and active.pk not in shares:
        flagged.append(active)
    return {"note_versions": versions, "active_version": active, "flagged_versions": flagged}


def _session_of(classroom, value) -> Session | None:
    """The classroom's session with this id (from a form or query), or None."""
    if not str(value or "").isdigit():
        return None
    return classroom.sessions.filter(pk=int(value)).first()


@login_required
def classroom_list(request):
    form = ClassroomForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.instance.owner = request.user
        classroom = form.save()
        messages.success(
            request, f"Classroom “{classroom}” created. Record consent before uploading photos."
        )
        return redirect("analytics:classroom", classroom.pk)
    classrooms = list(Classroom.with_consents(request.user.classrooms.prefetch_related("sessions")))
    return render(
        request, "analytics/classroom_list.html", {"classrooms": classrooms, "form": form}
    )


def _classroom_page(request, classroom, **forms):
    sessions = list(classroom.sessions.order_by("-started_at", "-id"))
    summaries = services.session_summaries(s.pk for s in sessions)
    context = {
        "classroom": classroom,
        "consent": classroom.consent,
        "consents": classroom.consents.select_related("recorded_by"),
        "sessions": [(s, summaries[s.pk]) for s in sessions],
        "consent_form": forms.get("consent_form") or ConsentForm(),
        "retention_form": forms.get("retention_form") or RetentionForm(instance=classroom),
        "detection_form": forms.get("detection_form") or DetectionModeForm(instance=classroom),
        "face_detail_form": forms.get("face_detail_form") or FaceDetailForm(instance=classroom),
        "activities_form": forms.get("activities_form") or ActivitiesForm(instance=classroom),
        "session_form": forms.get("session_form") or SessionForm(),
        "definition": services.ENGAGEMENT_DEFINITION,
        "access_count": classroom.access_records.count(),
        # Consent recorded from a session's "record consent" link returns to that session.
        "return_session": _session_of(
            classroom, request.POST.get("session") or request.GET.get("session")
        ),
    }
    status = 400 if forms else 200
    return render(request, "analytics/classroom_detail.html", context, status=status)


@login_required
def classroom_detail(request, pk):
    return _classroom_page(request, _classroom(request, pk))


ACCESS_LOG_PAGE = 50


@login_required
def access_log(request, pk):
    """Who viewed or exported this classroom's results, newest first, a page at a time."""
    classroom = _classroom(request, pk)
    records = classroom.access_records.select_related("session").order_by("-at", "-id")
    page = Paginator(records, ACCESS_LOG_PAGE).get_page(request.GET.get("page"))
    return render(request, "analytics/access_log.html", {"classroom": classroom, "page": page})


@login_required
@require_POST
def record_consent(request, pk):
    classroom = _classroom(request, pk)
    form = ConsentForm(request.POST)
    if not form.is_valid():
        return _classroom_page(request, classroom, consent_form=form)
    services.record_consent(classroom, user=request.user, **form.cleaned_data)
    messages.success(request, "Consent recorded. You can now upload photos to this classroom.")
    session = _session_of(classroom, request.POST.get("session"))
    if session is not None:
        return redirect("analytics:session", session.pk)
    return redirect("analytics:classroom", classroom.pk)


def _posted_setting(request, pk, form_class):
    """The teacher's classroom and a setting form bound to the posted data (a fresh instance:
    an invalid form must not change the classroom the page shows)."""
    classroom = _classroom(request, pk)
    return classroom, form_class(request.POST, instance=Classroom.objects.get(pk=classroom.pk))


@login_required
@require_POST
def update_retention(request, pk):
    classroom, form = _posted_setting(request, pk, RetentionForm)
    if not form.is_valid():
        return _classroom_page(request, classroom, retention_form=form)
    retention = form.cleaned_data["retention"]
    affected = services.photos_retention_changes(classroom, retention).count()
    if affected and request.POST.get("confirmed") != "yes":
        # Blurring or deleting stored photos cannot be undone: say how many, and ask first.
        return render(
            request,
            "analytics/retention_confirm.html",
            {
                "classroom": classroom,
                "retention": retention,
                "retention_label": Retention(retention).label,
                "affected": affected,
            },
        )
    before = services.audited_settings(classroom)
    changed = services.set_retention(classroom, retention)
    services.audit_setting_changes(request.user, classroom, before)
    message = f"Retention set to: {classroom.get_retention_display().lower()}."
    if changed:
        message += f" Applying it to {changed} photo(s) already analysed, in the background."
    messages.success(request, message)
    return redirect("analytics:classroom", classroom.pk)


def _save_setting(request, pk, form_class, form_name: str, message) -> object:
    """Save one classroom setting from its form on the classroom page; `message(classroom)`
    says what changed."""
    classroom, form = _posted_setting(request, pk, form_class)
    if not form.is_valid():
        return _classroom_page(request, classroom, **{form_name: form})
    before = services.audited_settings(classroom)
    form.save()
    services.audit_setting_changes(request.user, form.instance, before)
    messages.success(request, message(form.instance))
    return redirect("analytics:classroom", classroom.pk)


@login_required
@require_POST
def update_detection_mode(request, pk):
    return _save_setting(
        request,
        pk,
        DetectionModeForm,
        "detection_form",
        lambda classroom: (
            f"Face detection set to: {classroom.get_detection_mode_display()}. "
            "It applies to the next analyses."
        ),
    )


@login_required
@require_POST
def update_activities(request, pk):
    return _save_setting(
        request,
        pk,
        ActivitiesForm,
        "activities_form",
        lambda classroom: (
            f"Activities saved: {', '.join(classroom.activities) or 'none'}. Photos already "
            "tagged keep their activity."
        ),
    )


@login_required
@require_POST
def update_face_detail(request, pk):
    return _save_setting(
        request,
        pk,
        FaceDetailForm,
        "face_detail_form",
        lambda classroom: (
            "Per-face detail is now hidden: pages, exports and the API show "
            "class-level aggregates only."
            if classroom.hide_face_detail
            else "Per-face detail is shown again: face boxes, states and probabilities."
        ),
    )


@login_required
@require_POST
def delete_classroom(request, pk):
    classroom = _classroom(request, pk)
    name = str(classroom)
    classroom.delete()
    messages.success(request, f"Classroom “{name}”, its sessions, results and photos deleted.")
    return redirect("analytics:classrooms")


@login_required
def create_session(request, pk):
    classroom = _classroom(request, pk)
    form = SessionForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            form.instance.classroom = classroom
            session = form.save()
            return redirect("analytics:session", session.pk)
        return _classroom_page(request, classroom, session_form=form)
    return render(request, "analytics/session_form.html", {"classroom": classroom, "form": form})


def _session_notes(trends: list[dict]) -> list[dict]:
    """The notes on the sessions of a trend, numbered in the trend's order (the chart marks
    each session with its number)."""
    notes = dict(
        Session.objects.filter(pk__in=[row["session"] for row in trends])
        .exclude(note="")
        .values_list("pk", "note")
    )
    numbered = [row for row in trends if row["session"] in notes]
    return [
        {"number": number, "session": row["session"], "title": row["title"],
         "started_at": row["started_at"], "faces": row["faces"], "note": notes[row["session"]]}
        for number, row in enumerate(numbered, start=1)
    ]  # fmt: skip


@login_required
@require_POST
def session_note(request, pk):
    """Save the teacher's private note on their session."""
    session = _session(request, pk)
    form = SessionNoteForm(request.POST, instance=session)
    if form.is_valid():
        form.save()
        messages.success(request, "Note saved." if session.note else "Note removed.")
    else:
        messages.error(request, "; ".join(form.errors["note"]))
    return redirect(reverse("analytics:session", args=[session.pk]) + "#session-note")


@login_required
def session_detail(request, pk):
    session = _session(request, pk)
    services.record_access(
        request.user, AccessAction.VIEWED_SESSION, session.classroom, session=session
    )
    photos = session.photos.prefetch_related("faces__model_version").order_by("uploaded_at", "id")
    summary = services.session_summary(session)
    corrected, intervals = summary["corrected_shares"] or {}, summary["intervals"] or {}
    note = _model_note([session.pk])
    context = {
        "session": session,
        "classroom": session.classroom,
        "consent": session.classroom.consent,
        "note_form": SessionNoteForm(instance=session),
        "summary": summary,
        "state_rows": [
            (state, summary["counts"][state], summary["shares"][state])
            + (corrected.get(state), intervals.get(state))
            for state in summary["counts"]
        ],
        "quantification": session.quantification,
        "uncorrected_reason": services.uncorrected_reason(
            session.quantification, summary, note["note_versions"]
        ),
        "min_faces": MIN_FACES,
        "correction_note": services.CORRECTION_NOTE,
        "counts_rounded_note": services.COUNTS_ROUNDED_NOTE,
        "can_reanalyse": services.reanalysable_photos(session)[0].exists(),
        "definition": services.ENGAGEMENT_DEFINITION,
        "config": {
            "uploadUrl": reverse("analytics-api:session-photos", args=[session.pk]),
            "photosUrl": reverse("analytics-api:photo-list") + f"?session={session.pk}",
            "sessionUrl": reverse("analytics-api:session-detail", args=[session.pk]),
            "retryUrl": reverse("analytics-api:photo-retry", args=[0]),
            "colours": {**charts.STATE_COLOURS, "_other": charts.OTHER_COLOUR},
            "csrfToken": get_token(request),
            "maxBytes": settings.EDUMOOD_MAX_UPLOAD_BYTES,
            "maxFiles": settings.EDUMOOD_MAX_FILES_PER_BATCH,
            # Within what the reverse proxy accepts (a dataset zip's size, README) and what
            # cannot exceed the batch's pixel limit at the allowed pixels per byte.
            "maxBatchBytes": min(
                settings.EDUMOOD_MAX_DATASET_BYTES,
                settings.EDUMOOD_MAX_BATCH_PIXELS // settings.EDUMOOD_MAX_PIXELS_PER_BYTE,
            ),
            "lowConfidence": LOW_CONFIDENCE,
            "photos": PhotoSerializer(photos, many=True).data,
        },
        "statuses": PhotoStatus.choices,
        **note,
    }
    return render(request, "analytics/session_detail.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def reanalyse_session(request, pk):
    """GET asks for confirmation (what is analysed again, by which model); POST queues it."""
    session = _session(request, pk)
    if request.method != "POST":
        stored, others = services.reanalysable_photos(session)
        if not stored.exists():
            messages.info(request, "No stored original to analyse again in this session.")
            return redirect("analytics:session", session.pk)
        context = {
            "session": session,
            "classroom": session.classroom,
            "queued": stored.count(),
            "skipped": others.count(),
            "versions": services.model_versions_used([session.pk])[session.pk],
            "active_version": active_model_version(),
        }
        return render(request, "analytics/reanalyse_confirm.html", context)
    queued, skipped = services.reanalyse_session(session)
    if queued:
        messages.success(request, f"{queued} photo(s) queued for analysis with the active model.")
    if skipped:
        messages.warning(
            request,
            f"{skipped} photo(s) keep their current results: their originals were deleted or "
            "blurred after analysis (the classroom's retention setting).",
        )
    if not queued and not skipped:
        messages.info(request, "Nothing to re-analyse yet.")
    return redirect("analytics:session", session.pk)


@login_required
@require_POST
def delete_session(request, pk):
    session = _session(request, pk)
    classroom = session.classroom
    session.delete()
    messages.success(request, f"Session “{session.title}”, its results and photos deleted.")
    return redirect("analytics:classroom", classroom.pk)


@login_required
def photo_image(request, pk):
    """The stored image of a photo, to its owner only; never a public media URL."""
    photo = get_object_or_404(Photo, pk=pk, session__classroom__owner=request.user)
    if not photo.image:
        raise Http404("The original was deleted after analysis.")
    # A session page fetches each of its photos: the visit is its one row in the access log.
    visited = AccessRecord.objects.filter(
        user=request.user,
        session=photo.session,
        action=AccessAction.VIEWED_SESSION,
        at__gte=timezone.now() - API_READ_WINDOW,
    )
    if not visited.exists():
        services.record_access(
            request.user,
            AccessAction.VIEWED_PHOTO,
            photo.session.classroom,
            session=photo.session,
            detail=f"photo {photo.pk} ({photo.image_state})",
        )
    content_type = mimetypes.guess_type(photo.image.name)[0] or "application/octet-stream"
    response = FileResponse(photo.image.open("rb"), content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _range(request):
    """The page's date range form and its bounds; a range it cannot read is not applied, and
    the page answers 400 with the form's message."""
    form = DateRangeForm(request.GET or None)
    return (form, *form.range())


def _status(form) -> int:
    return 400 if form.errors else 200


@login_required
def dashboard(request, pk):
    classroom = _classroom(request, pk)
    services.record_access(request.user, AccessAction.VIEWED_DASHBOARD, classroom)
    form, after, before = _range(request)
    trends = services.classroom_trends(classroom, after, before)
    analysed = [row for row in trends if row["faces"]]
    chosen = None
    if analysed and not classroom.hide_face_detail:  # a photo of a few faces shows their states
        wanted = request.GET.get("session")
        chosen = next((r for r in analysed if str(r["session"]) == wanted), analysed[-1])
    timeline = (
        services.session_timeline(Session.objects.get(pk=chosen["session"])) if chosen else None
    )
    kinds = services.compare_kinds(analysed)
    notes = _session_notes(trends)
    figures = {
        "engagement": charts.engagement_over_time(trends, notes),
        "distribution": charts.state_distribution(trends),
        "timeline": charts.session_timeline(timeline) if chosen else None,
        "kinds": charts.kind_comparison(kinds),
    }
    context = {
        "classroom": classroom,
        "form": form,
        "trends": trends,
        "analysed": analysed,
        "chosen": chosen,
        "timeline": timeline,
        "timeline_photos": len(charts.timeline_photos(timeline)) if timeline else 0,
        "timeline_min_faces": charts.TIMELINE_MIN_FACES,
        "kinds": kinds,
        "notes": notes,
        "figures": figures,
        "headline": services.dashboard_headline(analysed),
        **_activities(classroom, after, before),
        "query": request.GET.urlencode(),
        "definition": services.ENGAGEMENT_DEFINITION,
        **_model_note(row["session"] for row in analysed),
    }
    return render(request, "analytics/dashboard.html", context, status=_status(form))


@login_required
def report(request, pk):
    """A printable summary of a classroom's sessions (the browser prints it to PDF)."""
    classroom = _classroom(request, pk)
    services.record_access(request.user, AccessAction.PRINTED_REPORT, classroom)
    form, after, before = _range(request)
    trends = services.classroom_trends(classroom, after, before)
    versions = services.model_versions_used(row["session"] for row in trends)
    kinds = services.compare_kinds([row for row in trends if row["faces"]])
    states = list(trends[0]["counts"]) if trends else list(charts.STATE_COLOURS)
    notes = _session_notes(trends)
    figures = {
        "engagement": charts.for_print(charts.engagement_over_time(trends, notes)),
        "distribution": charts.for_print(charts.state_distribution(trends)),
        "kinds": charts.for_print(charts.kind_comparison(kinds)),
    }
    context = {
        "classroom": classroom,
        "consent": classroom.consent,
        "form": form,
        "after": after,
        "before": before,
        "states": states,
        "rows": [
            {
                **row,
                "cells": [
                    (row["counts"].get(s, 0), row["shares"].get(s))
                    + ((row["corrected_shares"] or {}).get(s), (row["intervals"] or {}).get(s))
                    for s in states
                ],
                "versions": ", ".join(v["name"] for v in versions[row["session"]]),
                "kind_label": SessionKind(row["kind"]).label,
            }
            for row in trends
        ],
        "kinds": kinds,
        "notes": notes,
        "figures": figures,
        "generated_at": timezone.now(),
        "definition": services.ENGAGEMENT_DEFINITION,
        "correction_note": services.CORRECTION_NOTE,
        "counts_rounded_note": services.COUNTS_ROUNDED_NOTE,
        "min_faces": MIN_FACES,
        **_activities(classroom, after, before),
        **_model_note(row["session"] for row in trends),
    }
    return render(request, "analytics/report.html", context, status=_status(form))


def _activities(classroom, after, before) -> dict:
    pools = services.activity_pools(classroom, after, before)
    return {
        "activities": pools,
        "comparisons": services.compare_activities(pools),
        "min_faces": MIN_FACES,
    }


@login_required
def privacy_receipt(request, pk):
    """One printable page for parents: consent, what is kept and for how long, the model and
    its limits, who opened the results (services.privacy_receipt: class-level only)."""
    classroom = _classroom(request, pk)
    services.record_access(request.user, AccessAction.PRIVACY_RECEIPT, classroom)
    context = {
        "classroom": classroom,
        "generated_at": timezone.now(),
        "receipt": services.privacy_receipt(classroom),
        "hide_face_detail": classroom.hide_face_detail,
    }
    return render(request, "analytics/privacy_receipt.html", context)
