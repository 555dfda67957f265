from django import forms
from django.utils import timezone
from django.utils.html import format_html

from .choices import RETENTION_KEEPS, Retention
from .models import Classroom, Consent, Session, validate_consent_date

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


class DateRangeForm(forms.Form):
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
        return data
