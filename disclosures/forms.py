from __future__ import annotations

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.products import Product

from .models import DisclosureLanguage, Document, DocumentVersion


class AcknowledgeForm(forms.Form):
    version_id = forms.IntegerField(widget=forms.HiddenInput)
    language = forms.ChoiceField(choices=DisclosureLanguage.choices, widget=forms.HiddenInput)
    content_hash = forms.CharField(max_length=64, widget=forms.HiddenInput)
    serving_token = forms.CharField(max_length=64, widget=forms.HiddenInput)
    # Checked by the service, so a missing tick gets its clear message there.
    confirmed_read_and_understood = forms.BooleanField(required=False)
    confirmed_invited_to_ask_and_seek_advice = forms.BooleanField(required=False)


class ClientSearchForm(forms.Form):
    q = forms.CharField(label=_("Client email or name"), max_length=100, required=False)


class DocumentAdminForm(forms.ModelForm):
    products = forms.MultipleChoiceField(
        label=_("Required for products"),
        choices=Product.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("A client must have acknowledged the current version before using these products."),
    )

    class Meta:
        model = Document
        fields = ["code", "title_en", "title_zh"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The admin leaves out the fields a view-only reader may not edit (it shows them read-only itself).
        if self.instance.pk and "products" in self.fields:
            self.fields["products"].initial = list(self.instance.requirements.values_list("product", flat=True))
        if self.instance.pk and "code" in self.fields:
            self.fields["code"].disabled = True


class VersionAdminForm(forms.ModelForm):
    class Meta:
        model = DocumentVersion
        fields = ["document", "body_en", "body_zh", "change_summary", "material", "effective_date"]
        widgets = {
            "body_en": forms.Textarea(attrs={"rows": 24, "cols": 100}),
            "body_zh": forms.Textarea(attrs={"rows": 24, "cols": 100}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and "document" in self.fields:
            self.fields["document"].disabled = True
        if not self.instance.pk and "effective_date" in self.fields:
            self.fields["effective_date"].initial = timezone.localdate()


class PublishForm(forms.Form):
    fingerprint = forms.CharField(widget=forms.HiddenInput)
    confirm = forms.BooleanField(
        label=_("I have reviewed both languages and the differences, and I want to publish this version."),
    )


class WithdrawForm(forms.Form):
    reason = forms.CharField(label=_("Reason for withdrawal"), widget=forms.Textarea(attrs={"rows": 3}))
