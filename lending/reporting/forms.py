from django import forms
from django.utils.translation import gettext_lazy as _

from lending.models import Band
from lending.risk.models import CollateralType

from .models import ComplaintChannel, ComplaintOutcome, ControlArea, GroupBasis, RecordRequest

DATE = {"widget": forms.DateInput(attrs={"type": "date"})}


class PackForm(forms.Form):
    as_of = forms.DateField(label=_("As at (any past date)"), **DATE)


class CapitalForm(forms.Form):
    as_of = forms.DateField(label=_("As at"), **DATE)
    liquid_capital = forms.DecimalField(label=_("Liquid capital (HKD)"), max_digits=18, decimal_places=2, min_value=0)
    ceiling_multiple = forms.DecimalField(label=_("Policy ceiling (× liquid capital)"), max_digits=6, decimal_places=2, initial="5.00")
    source_reference = forms.CharField(label=_("Source (e.g. the FRR return)"), max_length=200)
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}))


class DeviationForm(forms.Form):
    area = forms.ChoiceField(label=_("Control area"), choices=ControlArea.choices)
    benchmark = forms.CharField(label=_("Benchmark departed from"), max_length=300)
    departure = forms.CharField(label=_("The departure"), widget=forms.Textarea(attrs={"rows": 2}))
    justification = forms.CharField(label=_("Justification"), widget=forms.Textarea(attrs={"rows": 2}))
    compensating_control = forms.CharField(label=_("Compensating control"), widget=forms.Textarea(attrs={"rows": 2}))
    review_date = forms.DateField(label=_("Next review"), **DATE)


class StaffComplaintForm(forms.Form):
    client_email = forms.EmailField(label=_("Client's email (if a client)"), required=False)
    complainant_name = forms.CharField(label=_("Complainant"), max_length=200)
    complainant_contact = forms.CharField(label=_("Contact"), max_length=200, required=False)
    channel = forms.ChoiceField(label=_("Received by"), choices=[c for c in ComplaintChannel.choices if c[0] != ComplaintChannel.PORTAL])
    received_at = forms.DateTimeField(label=_("Received at (HKT)"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    subject = forms.CharField(label=_("Subject"), max_length=200)
    details = forms.CharField(label=_("Details"), widget=forms.Textarea(attrs={"rows": 4}))
    staff_involved = forms.CharField(label=_("Staff involved (emails, comma-separated)"), required=False)


class ClientComplaintForm(forms.Form):
    subject = forms.CharField(label=_("Subject"), max_length=200)
    details = forms.CharField(label=_("What happened, and what would you like us to do?"), widget=forms.Textarea(attrs={"rows": 6}))


class CloseComplaintForm(forms.Form):
    outcome = forms.ChoiceField(label=_("Outcome"), choices=ComplaintOutcome.choices)
    text = forms.CharField(label=_("Answer given to the complainant"), widget=forms.Textarea(attrs={"rows": 4}))


class RecordRequestForm(forms.Form):
    client_email = forms.EmailField(label=_("Client's email"))
    basis = forms.ChoiceField(label=_("Basis"), choices=RecordRequest.Basis.choices)
    reference = forms.CharField(label=_("Request reference"), max_length=100)


class SnapshotFilterForm(forms.Form):
    day_from = forms.DateField(label=_("From"), required=False, **DATE)
    day_to = forms.DateField(label=_("To"), required=False, **DATE)
    collateral_type = forms.ChoiceField(label=_("Collateral"), choices=[("", _("All")), *CollateralType.choices], required=False)
    band = forms.ChoiceField(label=_("Band"), choices=[("", _("All")), *Band.choices], required=False)
    search = forms.CharField(label=_("Client"), required=False)
    facility = forms.IntegerField(label=_("Facility number"), required=False, min_value=1)


class BandChangeFilterForm(forms.Form):
    since = forms.DateField(label=_("From"), required=False, **DATE)
    until = forms.DateField(label=_("To"), required=False, **DATE)
    to_band = forms.ChoiceField(label=_("Into band"), choices=[("", _("All")), *Band.choices], required=False)
    search = forms.CharField(label=_("Client"), required=False)
    facility = forms.IntegerField(label=_("Facility number"), required=False, min_value=1)


class ClientGroupForm(forms.Form):
    name = forms.CharField(label=_("Group name"), max_length=200)
    basis = forms.ChoiceField(label=_("Basis"), choices=GroupBasis.choices)
    description = forms.CharField(label=_("Why these clients are one risk"), widget=forms.Textarea(attrs={"rows": 2}))


class GroupMemberForm(forms.Form):
    client_email = forms.EmailField(label=_("Client's email"))
    relationship = forms.CharField(label=_("Relationship"), max_length=200, help_text=_("e.g. director and majority shareholder; spouse; guarantor of the facility"))
    reason = forms.CharField(label=_("Evidence and reason"), widget=forms.Textarea(attrs={"rows": 2}))
    effective_from = forms.DateField(label=_("In the group from"), **DATE)
