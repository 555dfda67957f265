from datetime import UTC, datetime, time

from django import forms
from django.utils import timezone
from django.utils.html import format_html

from .choices import RETENTION_KEEPS, Retention
from .models import Classroom, Consent, Session, clean_activities, validate_consent_date

HELP_HTML = '{} <span class="choice-help">{}</span>'


class RetentionChoiceMixin:
    """Shows under each retention choice what it keeps, where the teacher chooses."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["retention"].widget = forms.RadioSelect(attrs={"class": "described-choices"})
        self.fields["retention"].choices = [
            (value, format_html(HELP_HTML, label, RETENTION_KEEPS[value]))
            for value, label in Retention.choices
        ]


class ClassroomForm(RetentionChoiceMixin, forms.ModelForm):
    class Meta:
        model = Classroom
        fields = ["name", "subject", "description", "retention", "hide_face_detail"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


class ConsentForm(forms.ModelForm):
    """Who consented, how and when: a checkbox alone says none of that."""

    class Meta:
        model = Consent
        fields = ["obtained_from", "method", "obtained_on", "notes"]
        labels = {
            "obtained_from": "Who consented",
            "method": "How consent was obtained",
            "obtained_on": "Date consent was obtained",
        }
        widgets = {
            "obtained_on": forms.DateInput(attrs={"type": "date"}),
            "notes": forms.Textarea(
                attrs={"rows": 2, "placeholder": "e.g. where the signed forms are kept, opt-outs"}
            ),
        }

    def clean_obtained_on(self):
        value = self.cleaned_data["obtained_on"]
        validate_consent_date(value)
        return value

    def clean(self):
        data = super().clean()
        if data.get("method") == "other" and not data.get("notes", "").strip():
            self.add_error("notes", "Describe how consent was obtained.")
        return data


class RetentionForm(RetentionChoiceMixin, forms.ModelForm):
    class Meta:
        model = Classroom
        fields = ["retention"]


class FaceDetailForm(forms.ModelForm):
    class Meta:
        model = Classroom
        fields = ["hide_face_detail"]


class DetectionModeForm(forms.ModelForm):
    class Meta:
        model = Classroom
        fields = ["detection_mode"]
        widgets = {"detection_mode": forms.RadioSelect}


class ActivitiesForm(forms.ModelForm):
    """The classroom's lesson activities, one per line."""

    activities = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="One per line; photos are tagged with one of these when uploaded.",
    )

    class Meta:
        model = Classroom
        fields = ["activities"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial["activities"] = "\n".join(self.instance.activities)

    def clean_activities(self) -> list[str]:
        return clean_activities(self.cleaned_data["activities"].splitlines())


class SessionNoteForm(forms.ModelForm):
    """The teacher's private note on a session (session page)."""

    class Meta:
        model = Session
        fields = ["note"]
        widgets = {"note": forms.Textarea(attrs={"rows": 2, "maxlength": 300})}


class SessionForm(forms.ModelForm):
    class Meta:
        model = Session
        fields = ["title", "started_at", "kind"]
        labels = {"started_at": "Date and time"}
        widgets = {
            "started_at": forms.DateTimeInput(
                attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
            )
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound and self.instance.pk is None:
            self.initial.setdefault(
                "started_at", timezone.localtime().replace(second=0, microsecond=0)
            )


def storable_moment(moment: datetime) -> datetime:
    """The moment, if the database can compare with it: it stores UTC, and a bound such as
    0001-01-01T00:00:00+14:00 or 9999-12-31T23:59:59-14:00 falls outside years 1 to 9999 once
    converted (the conversion raised OverflowError: a 500 on every date filter)."""
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise forms.ValidationError(
            "%(moment)s is outside the years 1 to 9999 once converted to UTC.",
            code="out_of_range",
            params={"moment": moment.isoformat()},
        ) from None
    return moment


class SessionTimeField(forms.DateTimeField):
    """A bound on when sessions started: an ISO date or date-time the database can compare
    with. Every date filter (the API's `after`/`before`, the pages' date range) reads its
    bounds through this field or storable_moment."""

    def to_python(self, value):
        moment = super().to_python(value)
        return None if moment is None else storable_moment(moment)


class DateRangeForm(forms.Form):
    """The pages' date range: whole days in the current time zone; `range()` gives the first
    and last moment as aware date-times."""

    after = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    before = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self):
        data = super().clean()
        if data.get("after") and data.get("before") and data["after"] > data["before"]:
            raise forms.ValidationError("The start of the range is after its end.")
        zone = timezone.get_current_timezone()
        for name, start in (("after", time.min), ("before", time.max)):
            if data.get(name):
                data[f"{name}_moment"] = storable_moment(datetime.combine(data[name], start, zone))
        return data

    def range(self) -> tuple[datetime | None, datetime | None]:
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        return data.get("after_moment"), data.get("before_moment")
