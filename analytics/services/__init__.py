"""Domain operations of the classroom side, one module per concern. Pages, the API and tasks
call them through this facade:

- consent: consent records, access records, retention of originals (protected copy / delete),
  the audit of classroom setting changes
- uploads: checking and storing uploaded photos and zips
- analysis: analysing a photo (through edumood_site.work), retry, re-analysis
- aggregates: session summaries, trends, timelines, in-person vs online
- activities: lesson activities pooled across sessions, compared by the trend's rule
- exports: CSV exports
- quantification: corrected shares with intervals, computed by the worker and stored
- receipt: the privacy receipt for parents (class-level facts only)
"""

from .activities import activity_pools, compare_activities
from .aggregates import (
    COUNTS_ROUNDED_NOTE,
    ENGAGEMENT_DEFINITION,
    classroom_sessions,
    classroom_trends,
    combined_versions,
    compare_kinds,
    dashboard_headline,
    model_versions_used,
    session_summaries,
    session_summary,
    session_timeline,
)
from .analysis import (
    PhotoActionError,
    analyse_photo,
    reanalysable_photos,
    reanalyse_session,
    retry_photo,
)
from .consent import (
    ConsentRequired,
    apply_classroom_retention,
    audit_setting_changes,
    audited_settings,
    delete_photo_file,
    photos_retention_changes,
    protect_stored_copy,
    record_access,
    record_consent,
    resend_pending_retention,
    set_retention,
)
from .exports import FaceDetailHidden, activities_csv, faces_csv, sessions_csv
from .quantification import CORRECTION_NOTE, quantify_session, uncorrected_reason
from .receipt import privacy_receipt
from .uploads import (
    UploadError,
    sweep_upload_leftovers,
    upload_photos,
)

__all__ = [
    "CORRECTION_NOTE", "COUNTS_ROUNDED_NOTE", "ConsentRequired",
    "activities_csv", "activity_pools", "apply_classroom_retention", "compare_activities",
    "ENGAGEMENT_DEFINITION", "FaceDetailHidden", "PhotoActionError", "UploadError", "analyse_photo",
    "audit_setting_changes", "audited_settings", "classroom_sessions", "classroom_trends",
    "combined_versions", "compare_kinds", "dashboard_headline", "delete_photo_file", "faces_csv",
    "model_versions_used", "photos_retention_changes", "privacy_receipt", "protect_stored_copy",
    "quantify_session", "reanalysable_photos", "reanalyse_session", "record_access",
    "record_consent", "resend_pending_retention", "retry_photo", "session_summaries",
    "session_summary", "session_timeline",
    "sessions_csv", "set_retention",
    "sweep_upload_leftovers", "uncorrected_reason", "upload_photos",
]  # fmt: skip
