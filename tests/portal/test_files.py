"""Private files are served sandboxed: a PDF with JavaScript or an HTML file posing as an image never runs
on the portal's origin."""

from __future__ import annotations

import pytest

from portal.files import private_file_response
from tests.onboarding.conftest import draft_attestation

pytestmark = pytest.mark.django_db


def _assert_hardened(response):
    assert response["Content-Security-Policy"] == "sandbox"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]


def test_file_response_is_sandboxed_and_not_sniffed():
    response = private_file_response(b"%PDF-1.4", content_type="application/pdf", filename="s.pdf", inline=True)
    _assert_hardened(response)
    assert response["Content-Disposition"] == 'inline; filename="s.pdf"'
    assert b"".join(response.streaming_content) == b"%PDF-1.4"


def test_download_is_an_attachment_and_non_ascii_names_are_encoded():
    response = private_file_response(iter(["a,b\n", "1,2\n"]), content_type="text/csv", filename="結單.csv")
    _assert_hardened(response)
    assert response["Content-Disposition"].startswith("attachment; filename*=utf-8''")
    assert b"".join(response.streaming_content) == b"a,b\n1,2\n"


def test_evidence_file_is_served_sandboxed(client, alice, media_root):
    evidence = draft_attestation(alice).evidence.get()
    client.force_login(alice)
    response = client.get(f"/onboarding/evidence/{evidence.pk}/")
    assert response.status_code == 200
    _assert_hardened(response)
    assert response["Content-Disposition"].startswith("inline;")
