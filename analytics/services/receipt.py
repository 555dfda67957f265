"""The privacy receipt a teacher hands to parents: what a classroom's consent covers, what is
kept and for how long, the model and its limits, and who opened the results. Class-level
only: nothing in it is about one student (no face, state, session photo or free-text note)."""

from collections import Counter, defaultdict

from django.db.models import Count
from django.db.models.functions import TruncDate

from classifier.models import ModelVersion
from classifier.services import active_model_version
from ml import privacy
from ml.quantify import Calibration

from ..choices import AccessAction, ImageState, Retention
from ..models import Classroom, FaceResult, Photo
from .aggregates import model_versions_used

# Days of the access summary printed; older days are counted, not listed.
ACCESS_DAYS_SHOWN = 60

_UNTIL_DELETED = (
    "until the teacher deletes the session or the classroom (there is no automatic expiry)"
)

# What each retention setting keeps of a photo, in words for parents: (originals, copies).
KEPT_PHOTOS = {
    Retention.BLUR: (
        "Deleted as soon as the photo's analysis is stored, usually within a minute of the "
        "upload. A photo whose analysis failed keeps its original until the teacher retries "
        "or deletes it.",
        "A coarse copy of each analysed photo is kept, " + _UNTIL_DELETED + ". It shows the "
        f"whole photo as at most {privacy.BLOCKS} soft blocks across, with every detected face "
        "covered, so the results can be drawn on it. No face and no name label can be "
        "recognised in it, including faces the face detector missed.",
    ),
    Retention.DELETE: (
        "Deleted as soon as the photo's analysis is stored, usually within a minute of the "
        "upload. A photo whose analysis failed keeps its original until the teacher retries "
        "or deletes it.",
        "None: no copy of the photo is kept.",
    ),
    Retention.KEEP: (
        "Kept as uploaded, faces recognisable, " + _UNTIL_DELETED + ". The school chose this "
        "setting; ask the teacher why it is needed.",
        "None: the original is kept instead.",
    ),
}


def _model_facts(version: ModelVersion) -> dict:
    """A model version's limits in plain words: how often a face's state is right, per state
    (its calibration, measured on faces it was not trained on), and its bias audit."""
    card = version.card
    # A flagged or unmeasured model's numbers are no quality claim (its scorecard's flags say
    # why): the receipt gives the flags instead.
    facts = {
        "version": version,
        "accuracy": card.headline,
        "flags": card.flags,
        "per_state": [],
        "audit": None,
    }
    if card.headline is not None and version.calibration:
        calibration = Calibration.from_json(version.calibration)
        totals = calibration.confusion.sum(1)
        facts["per_state"] = [
            (state, calibration.confusion[i, i] / totals[i])
            for i, state in enumerate(calibration.states)
            if totals[i]
        ]
        facts["state_accuracy"] = calibration.confusion.trace() / calibration.confusion.sum()
    audit = version.audits.select_related("dataset_version__dataset").order_by("-created_at")
    audit = audit.first()
    if audit is not None:
        facts["audit"] = {
            "attributes": audit.attributes,
            "source": audit.get_source_display().lower(),
            "faces": audit.result.get("n"),
            "findings": audit.result.get("findings", []),
        }
    return facts


def _access_summary(classroom: Classroom) -> dict:
    """Who opened or exported the classroom's results, per day and person, with their role."""
    rows = (
        classroom.access_records.annotate(day=TruncDate("at"))
        .values("day", "username", "user__is_staff", "user_id", "action")
        .annotate(n=Count("id"))
        .order_by("-day", "username")
    )
    days: dict = defaultdict(lambda: defaultdict(Counter))
    roles = {}
    for row in rows:
        person = row["username"]
        days[row["day"]][person][AccessAction(row["action"]).label] += row["n"]
        if row["user_id"] == classroom.owner_id:
            roles[person] = "Teacher of this classroom"
        elif row["user_id"] is None:
            roles[person] = "Account since deleted"
        else:
            roles[person] = "Administrator" if row["user__is_staff"] else "Teacher"
    ordered = sorted(days.items(), key=lambda item: item[0], reverse=True)
    return {
        "rows": [
            {"day": day, "person": person, "role": roles[person], "actions": sorted(acts.items())}
            for day, people in ordered[:ACCESS_DAYS_SHOWN]
            for person, acts in sorted(people.items())
        ],
        "days": len(ordered),
        "days_not_shown": max(0, len(ordered) - ACCESS_DAYS_SHOWN),
        "people": len(roles),
    }


def privacy_receipt(classroom: Classroom) -> dict:
    """Everything the receipt prints about `classroom` (class-level counts only)."""
    photos = Photo.objects.filter(session__classroom=classroom)
    states = dict(photos.values_list("image_state").annotate(n=Count("id")))
    session_ids = list(classroom.sessions.values_list("pk", flat=True))
    used = {v["id"] for vs in model_versions_used(session_ids).values() for v in vs}
    versions = list(ModelVersion.objects.filter(pk__in=used).order_by("pk"))
    if not versions and (active := active_model_version()) is not None:
        versions = [active]
    originals, copies = KEPT_PHOTOS[Retention(classroom.retention)]
    return {
        "consent": classroom.consent,
        "consents": list(classroom.consents.order_by("-obtained_on", "-recorded_at")),
        "originals": originals,
        "copies": copies,
        "results_kept": "Kept " + _UNTIL_DELETED + ".",
        "stored": {
            "sessions": len(session_ids),
            "photos": sum(states.values()),
            "originals": states.get(ImageState.ORIGINAL, 0),
            "copies": states.get(ImageState.BLURRED, 0),
            "deleted": states.get(ImageState.DELETED, 0),
            "faces": FaceResult.objects.filter(photo__session__classroom=classroom).count(),
        },
        "models": [_model_facts(version) for version in versions],
        "models_used": bool(used),
        "access": _access_summary(classroom),
    }
