"""The disclosures admin for a view-only reader (compliance) and for a manager (admin): the document page."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_compliance_reads_a_document_in_the_admin_without_a_form_to_edit(client, compliance_user, document):
    assert compliance_user.has_perm("disclosures.view_document") and not compliance_user.has_perm("disclosures.change_document")
    client.force_login(compliance_user)
    response = client.get(reverse("admin:disclosures_document_change", args=[document.pk]))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "code" not in form.fields and "title_en" not in form.fields
    page = response.content.decode()
    assert "test-risk" in page and "Test risk" in page
    assert 'name="code"' not in page and 'name="title_en"' not in page and 'name="products"' not in page and 'name="_save"' not in page


def test_an_admin_edits_a_document_whose_code_is_fixed_once_created(client, admin_user, document):
    client.force_login(admin_user)
    response = client.get(reverse("admin:disclosures_document_change", args=[document.pk]))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.fields["code"].disabled and not form.fields["title_en"].disabled
    assert form.fields["products"].initial == ["va_margin"]
    add = client.get(reverse("admin:disclosures_document_add")).context["adminform"].form
    assert not add.fields["code"].disabled
