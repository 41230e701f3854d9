"""Page forms. They only shape input; the services validate the rules and make the changes."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from . import scoring, training
from .models import ClientProfile, EvidenceKind, PIAttestation
from .services import VERIFY_CHECKLIST, ReviewOutcome


def iso_date_input() -> forms.DateInput:
    """An ``<input type="date">``: the browser accepts only ISO dates, whatever the language."""
    return forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})


class ProfileForm(forms.ModelForm):
    other_names = forms.CharField(label=_("Other names"), required=False, help_text=_("Chinese name, former or trading names, separated by commas."))

    class Meta:
        model = ClientProfile
        fields = [
            "client_type", "legal_name", "other_names", "id_document_type", "id_document_number", "date_of_birth",
            "nationality", "residential_address", "correspondence_address", "phone", "preferred_language",
            "employment_status", "employer", "occupation", "annual_income", "net_worth", "liquid_assets",
            "source_of_wealth", "margin_account_number",
        ]
        widgets = {
            "date_of_birth": iso_date_input(),
            "residential_address": forms.Textarea(attrs={"rows": 2}),
            "correspondence_address": forms.Textarea(attrs={"rows": 2}),
            "source_of_wealth": forms.Textarea(attrs={"rows": 2}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance and self.instance.pk:
            self.initial["other_names"] = ", ".join(self.instance.other_names or [])

    def clean_other_names(self):
        return [n.strip() for n in self.cleaned_data["other_names"].split(",") if n.strip()]


class AttestationForm(forms.ModelForm):
    class Meta:
        model = PIAttestation
        fields = [
            "category", "basis", "declared_amount", "relevant_date", "includes_joint_with_associate",
            "includes_share_of_joint_with_others", "includes_wholly_owned_corporation", "understood_pi_treatment",
        ]
        widgets = {"relevant_date": iso_date_input()}
        help_texts = {
            "declared_amount": _("Your portfolio (securities, certificates of deposit and money held by a custodian) or total assets, in HKD or its equivalent."),
            "relevant_date": _("The date your figures are as at, usually the date of your latest statement."),
        }


class EvidenceForm(forms.Form):
    kind = forms.ChoiceField(label=_("Document"), choices=EvidenceKind.choices)
    issued_on = forms.DateField(label=_("Issue date"), widget=iso_date_input())
    file = forms.FileField(label=_("File (PDF, PNG or JPEG, at most 10 MB)"), widget=forms.ClearableFileInput(attrs={"accept": "application/pdf,image/png,image/jpeg"}))


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(label=_("Decision"), choices=[("verify", _("Verify")), ("reject", _("Reject")), ("return", _("Return with questions"))], widget=forms.RadioSelect)
    reason = forms.CharField(label=_("Reasons (shown to the client when rejecting)"), required=False, widget=forms.Textarea(attrs={"rows": 3}))
    questions = forms.CharField(label=_("Questions for the client (when returning)"), required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for code, label in VERIFY_CHECKLIST:
            self.fields[f"check_{code}"] = forms.BooleanField(label=label, required=False)

    def checklist(self) -> dict:
        return {code: self.cleaned_data.get(f"check_{code}", False) for code, _label in VERIFY_CHECKLIST}


class ReviewForm(forms.Form):
    outcome = forms.ChoiceField(label=_("Outcome"), choices=ReviewOutcome.choices, widget=forms.RadioSelect)
    note = forms.CharField(label=_("Review note"), widget=forms.Textarea(attrs={"rows": 3}))


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), required=False, widget=forms.Textarea(attrs={"rows": 2}))


class StepForm(forms.Form):
    """One questionnaire step, built from the version's definition in the client's language."""

    def __init__(self, *args, step: dict, language: str, **kwargs):
        # Every label is a question ending in its own question mark: a colon after it ("？：") is noise.
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.step = step
        for q in step["questions"]:
            label = scoring.text_in(q["label"], language)
            if q["type"] == "choice":
                field = forms.ChoiceField(label=label, required=False, widget=forms.RadioSelect,
                                          choices=[(o["value"], scoring.text_in(o["label"], language)) for o in q["options"]])
            elif q["type"] == "integer":
                field = forms.IntegerField(label=label, required=False, min_value=q.get("min", 0), max_value=q.get("max", 100000))
            elif q["type"] == "boolean":
                field = forms.TypedChoiceField(label=label, required=False, widget=forms.RadioSelect, coerce=lambda v: v == "yes",
                                               choices=[("yes", _("Yes")), ("no", _("No"))])
            else:
                field = forms.CharField(label=label, required=False, max_length=q.get("max_length", 200))
            condition = q.get("show_if")
            if condition:
                field.widget.attrs["data-show-if"] = condition["question"]
                if "equals" in condition:
                    field.widget.attrs["data-show-if-equals"] = {True: "yes", False: "no"}.get(condition["equals"], condition["equals"])
                    field.help_text = _("Needed if you answered yes above.")
                elif "gt" in condition:
                    field.widget.attrs["data-show-if-gt"] = condition["gt"]
                    field.help_text = _("Needed if you made any such transactions in the past three years.")
            self.fields[q["code"]] = field

    def raw_answers(self) -> dict:
        """The submitted values as the service expects them (the service validates)."""
        data = {}
        for q in self.step["questions"]:
            value = self.data.get(q["code"])
            if q["type"] == "boolean" and value in ("yes", "no"):
                value = value == "yes"
            data[q["code"]] = value
        return data

    @staticmethod
    def initial_from(step: dict, answers: dict) -> dict:
        initial = {}
        for q in step["questions"]:
            value = answers.get(q["code"])
            if q["type"] == "boolean" and value is not None:
                value = "yes" if value else "no"
            if value is not None:
                initial[q["code"]] = value
        return initial


class QuizForm(forms.Form):
    def __init__(self, *args, module: training.Module, **kwargs):
        super().__init__(*args, **kwargs)
        for q in module.quiz:
            self.fields[q.code] = forms.ChoiceField(label=q.text, widget=forms.RadioSelect, choices=[(str(i), text) for i, text in enumerate(q.options)])
