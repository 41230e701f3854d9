from django import forms
from django.utils.translation import gettext_lazy as _

REVERSED_RANGE = _("The end date is before the start date.")


def date_range_reversed(since, until) -> bool:
    """A From–To filter whose To is before its From: it would match nothing, so it is refused (the audit
    page and the audit API alike)."""
    return bool(since and until and until < since)


class AuditFilterForm(forms.Form):
    actor = forms.CharField(label=_("Actor email"), required=False)
    action = forms.CharField(label=_("Action contains"), required=False)
    object_type = forms.CharField(label=_("Record type"), required=False)
    object_id = forms.CharField(label=_("Record id"), required=False)
    since = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    include_system = forms.BooleanField(label=_("Include system housekeeping (price loads, revaluation runs)"), required=False)

    def clean(self):
        data = super().clean()
        if date_range_reversed(data.get("since"), data.get("until")):
            self.add_error("until", REVERSED_RANGE)
        return data

    def selector_filters(self) -> dict:
        """The audit_events() arguments for this filter (system housekeeping hidden unless ticked)."""
        if not self.is_bound:
            return {"include_system": False}
        data = {k: v for k, v in self.cleaned_data.items() if v}
        data["include_system"] = bool(self.cleaned_data.get("include_system"))
        return data
