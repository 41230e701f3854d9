from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from disclosures import loader, selectors, services, text
from disclosures.models import Acknowledgement, DocumentVersion, VersionStatus
from portal.errors import ConflictError, ForbiddenError, PortalError
from portal.models import AuditEvent, Notification
from portal.products import Product
from tests.disclosures.conftest import EN, ZH, acknowledge, publish_new

pytestmark = pytest.mark.django_db


# --- Text ---------------------------------------------------------------------------------


def test_canonical_text_normalises_line_endings_trailing_space_and_unicode():
    decomposed = "Cafe\u0301  \r\nline two\t\r\n\r\n"
    assert text.canonicalize(decomposed) == "Café\nline two\n"
    assert text.content_hash(decomposed) == text.content_hash("Café\nline two")


@pytest.mark.parametrize(
    "markdown",
    [
        "<script>alert(1)</script>hello",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        '<iframe src="https://evil.example"></iframe>',
        '<p onclick="steal()" style="x">p</p>',
        "<svg onload=alert(1)>",
    ],
)
def test_markdown_with_script_or_html_injection_is_rendered_harmless(markdown):
    html = text.render(markdown).lower()
    for bad in ("<script", "onerror", "onclick", "onload", "javascript:", "<iframe", "<svg", "style="):
        assert bad not in html


def test_markdown_keeps_headings_lists_tables_and_safe_links():
    html = text.render("## H\n\n- a\n- b\n\n|x|y|\n|-|-|\n|1|2|\n\n[sfc](https://www.sfc.hk)")
    assert "<h2>H</h2>" in html and "<li>a</li>" in html and "<table>" in html
    assert 'href="https://www.sfc.hk"' in html and "noopener" in html


# --- The shipped set ----------------------------------------------------------------------


def test_shipped_documents_are_published_by_the_migration_in_both_languages():
    versions = {v.document.code: v for v in DocumentVersion.objects.filter(status=VersionStatus.PUBLISHED).select_related("document")}
    for shipped in loader.SHIPPED_DOCUMENTS:
        version = versions[shipped.code]
        assert version.body_en and version.body_zh
        assert version.hash_en == text.content_hash(version.body_en)
        assert version.hash_zh == text.content_hash(version.body_zh)
        assert "<script" not in version.html_en


def test_products_require_the_documents_the_design_names(alice):
    def codes(product):
        return {s.code for s in selectors.required_documents(user=alice, product=product)}

    assert codes(Product.VA_MARGIN) >= {loader.SECURITIES_MARGIN, loader.VA_MARGIN_FINANCING, loader.VA_GENERAL}
    assert codes(Product.PERPETUALS) >= {loader.VA_PERPETUALS, loader.VA_GENERAL, loader.PROFESSIONAL_INVESTOR}
    assert codes(Product.PROFESSIONAL_INVESTOR) >= {loader.PROFESSIONAL_INVESTOR}


def test_va_margin_statement_states_the_regulated_numbers():
    version = DocumentVersion.objects.get(document__code=loader.VA_MARGIN_FINANCING, number=1)
    for phrase in ("bitcoin (BTC) and ether (ETH)", "never less than 60%", "two Hong Kong business days", "not** re-pledge"):
        assert phrase in version.body_en
    for phrase in ("比特幣", "以太幣", "60%", "兩個香港營業日", "扣減率", "追加保證金通知", "不會**將您質押的虛擬資產再質押"):
        assert phrase in version.body_zh


# --- Versions -----------------------------------------------------------------------------


def test_published_text_cannot_be_changed_through_the_service(admin_user, v1):
    with pytest.raises(ConflictError) as exc:
        services.version_update_draft(
            actor=admin_user, version_id=v1.pk, body_en="changed", body_zh="改", change_summary="", material=True, effective_date=v1.effective_date
        )
    assert exc.value.code == "immutable"
    assert DocumentVersion.objects.get(pk=v1.pk).body_en == text.canonicalize(EN)


@pytest.mark.parametrize("column", ["body_en", "body_zh", "hash_en", "hash_zh", "html_zh", "change_summary", "change_summary_zh", "material"])
def test_database_refuses_a_direct_update_of_published_text(v1, column):
    value = False if column == "material" else "tampered"
    with pytest.raises(DatabaseError), transaction.atomic():
        DocumentVersion.objects.filter(pk=v1.pk).update(**{column: value})
    assert DocumentVersion.objects.get(pk=v1.pk).body_en == text.canonicalize(EN)


def test_database_refuses_moving_a_published_version_back_to_draft(v1):
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE disclosures_documentversion SET status = 'draft' WHERE id = %s", [v1.pk])
    assert DocumentVersion.objects.get(pk=v1.pk).status == VersionStatus.PUBLISHED


def test_a_draft_can_be_edited_and_its_hash_follows(admin_user, document):
    draft = services.version_create_draft(actor=admin_user, document_id=document.pk, body_en="a", body_zh="")
    draft = services.version_update_draft(
        actor=admin_user, version_id=draft.pk, body_en="b  \r\n", body_zh="乙", change_summary="x", material=False, effective_date=draft.effective_date
    )
    assert draft.body_en == "b\n" and draft.hash_en == text.content_hash("b") and draft.hash_zh == text.content_hash("乙")


def test_publishing_needs_both_languages(admin_user, document):
    draft = services.version_create_draft(actor=admin_user, document_id=document.pk, body_en=EN, body_zh="  ")
    with pytest.raises(PortalError) as exc:
        services.version_publish(actor=admin_user, version_id=draft.pk)
    assert exc.value.code == "both_languages_required"
    assert DocumentVersion.objects.get(pk=draft.pk).status == VersionStatus.DRAFT


def test_publishing_supersedes_the_previous_version_and_is_audited(admin_user, document, v1):
    v2 = publish_new(admin_user, document, en=EN + "more\n", zh=ZH + "更多\n")
    assert DocumentVersion.objects.get(pk=v1.pk).status == VersionStatus.SUPERSEDED
    assert DocumentVersion.objects.get(pk=v2.pk).status == VersionStatus.PUBLISHED
    assert v2.number == 2 and v2.html_en and v2.published_by == admin_user
    actions = set(AuditEvent.objects.filter(object_type="disclosures.documentversion").values_list("action", flat=True))
    assert {"disclosures.version.published", "disclosures.version.superseded"} <= actions


def test_only_disclosure_managers_publish(compliance_user, admin_user, document):
    draft = services.version_create_draft(actor=admin_user, document_id=document.pk, body_en=EN, body_zh=ZH)
    with pytest.raises(ForbiddenError):
        services.version_publish(actor=compliance_user, version_id=draft.pk)
    assert DocumentVersion.objects.get(pk=draft.pk).status == VersionStatus.DRAFT


def test_publish_is_refused_when_the_draft_changed_after_the_preview(admin_user, document, v1):
    draft = services.version_create_draft(actor=admin_user, document_id=document.pk, body_en=EN + "x", body_zh=ZH + "x")
    fingerprint = services.preview_fingerprint(version=draft, current=v1)
    services.version_update_draft(
        actor=admin_user, version_id=draft.pk, body_en=EN + "y", body_zh=ZH + "y", change_summary="", material=True, effective_date=draft.effective_date
    )
    with pytest.raises(ConflictError) as exc:
        services.version_publish(actor=admin_user, version_id=draft.pk, fingerprint=fingerprint)
    assert exc.value.code == "preview_outdated"
    assert DocumentVersion.objects.get(pk=v1.pk).status == VersionStatus.PUBLISHED


def test_a_published_version_cannot_be_published_again_or_a_second_draft_opened(admin_user, document, v1):
    with pytest.raises(ConflictError):
        services.version_publish(actor=admin_user, version_id=v1.pk)
    services.version_create_draft(actor=admin_user, document_id=document.pk, body_en="a", body_zh="b")
    with pytest.raises(ConflictError):
        services.version_create_draft(actor=admin_user, document_id=document.pk, body_en="c", body_zh="d")


def test_withdrawing_the_current_version_leaves_no_current_version(admin_user, document, v1, alice):
    services.version_withdraw(actor=admin_user, version_id=v1.pk, reason="Error in the text")
    assert DocumentVersion.objects.get(pk=v1.pk).status == VersionStatus.WITHDRAWN
    assert "test-risk" not in {s.code for s in selectors.required_documents(user=alice, product=Product.VA_MARGIN)}
    with pytest.raises(ConflictError):
        services.version_withdraw(actor=admin_user, version_id=v1.pk, reason="again")


# --- Acknowledgement ------------------------------------------------------------------------


def test_acknowledgement_stores_what_was_shown(alice, v1):
    serving = services.version_serve(user=alice, version=v1, language="zh-hant")
    ack, created = services.acknowledgement_record(
        user=alice,
        version_id=v1.pk,
        language="zh-hant",
        content_hash=v1.hash_zh,
        serving_token=serving.token,
        confirmed_read_and_understood=True,
        confirmed_invited_to_ask_and_seek_advice=True,
    )
    assert created
    assert (ack.client, ack.version, ack.language, ack.content_hash, ack.serving) == (alice, v1, "zh-hant", v1.hash_zh, serving)
    assert text.content_hash(ack.version.body_zh) == ack.content_hash
    assert AuditEvent.objects.filter(action="disclosures.acknowledgement.recorded", object_id=str(ack.pk)).exists()


def test_acknowledgement_without_having_been_served_is_refused(alice, charlie, v1):
    charlies_serving = services.version_serve(user=charlie, version=v1, language="en")
    english_serving = services.version_serve(user=alice, version=v1, language="en")
    for token, language, content_hash in (
        ("", "en", v1.hash_en),
        (charlies_serving.token, "en", v1.hash_en),  # someone else's serving
        (english_serving.token, "zh-hant", v1.hash_zh),  # served in the other language
    ):
        with pytest.raises(PortalError) as exc:
            services.acknowledgement_record(
                user=alice, version_id=v1.pk, language=language, content_hash=content_hash, serving_token=token,
                confirmed_read_and_understood=True, confirmed_invited_to_ask_and_seek_advice=True,
            )
        assert exc.value.code == "not_served"
    assert not Acknowledgement.objects.filter(client=alice).exists()


def test_hash_mismatch_is_refused(alice, v1):
    serving = services.version_serve(user=alice, version=v1, language="en")
    with pytest.raises(ConflictError) as exc:
        services.acknowledgement_record(
            user=alice, version_id=v1.pk, language="en", content_hash=v1.hash_zh, serving_token=serving.token,
            confirmed_read_and_understood=True, confirmed_invited_to_ask_and_seek_advice=True,
        )
    assert exc.value.code == "hash_mismatch"
    assert not Acknowledgement.objects.exists()


def test_superseded_version_cannot_be_acknowledged(admin_user, alice, document, v1):
    serving = services.version_serve(user=alice, version=v1, language="en")
    publish_new(admin_user, document, en=EN + "v2", zh=ZH + "v2")
    with pytest.raises(ConflictError) as exc:
        services.acknowledgement_record(
            user=alice, version_id=v1.pk, language="en", content_hash=v1.hash_en, serving_token=serving.token,
            confirmed_read_and_understood=True, confirmed_invited_to_ask_and_seek_advice=True,
        )
    assert exc.value.code == "version_not_current"
    assert not Acknowledgement.objects.exists()


def test_both_statements_must_be_confirmed(alice, v1):
    serving = services.version_serve(user=alice, version=v1, language="en")
    with pytest.raises(PortalError) as exc:
        services.acknowledgement_record(
            user=alice, version_id=v1.pk, language="en", content_hash=v1.hash_en, serving_token=serving.token,
            confirmed_read_and_understood=True, confirmed_invited_to_ask_and_seek_advice=False,
        )
    assert exc.value.code == "confirmation_required"
    assert "confirmed_invited_to_ask_and_seek_advice" in exc.value.fields
    assert not Acknowledgement.objects.exists()


def test_acknowledging_twice_creates_one_row(alice, v1):
    first = acknowledge(alice, v1)
    second = acknowledge(alice, v1, "zh-hant")
    assert first.pk == second.pk
    assert Acknowledgement.objects.filter(client=alice).count() == 1


def test_staff_cannot_acknowledge(officer, v1):
    with pytest.raises(ForbiddenError):
        services.version_serve(user=officer, version=v1, language="en")


def test_acknowledgements_are_immutable(alice, v1):
    ack = acknowledge(alice, v1)
    with pytest.raises(PermissionError):
        ack.save()
    with pytest.raises(PermissionError):
        Acknowledgement.objects.filter(pk=ack.pk).update(language="zh-hant")
    with pytest.raises(PermissionError):
        ack.delete()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE disclosures_acknowledgement SET content_hash = 'x' WHERE id = %s", [ack.pk])
    assert Acknowledgement.objects.get(pk=ack.pk).content_hash == v1.hash_en


# --- Material and non-material updates --------------------------------------------------------


def _status(user, code="test-risk"):
    return next(s for s in selectors.required_documents(user=user, product=Product.VA_MARGIN) if s.code == code)


def test_material_update_makes_earlier_acknowledgements_stale_and_notifies(admin_user, alice, charlie, document, v1, django_capture_on_commit_callbacks):
    acknowledge(alice, v1)
    assert _status(alice).acknowledged
    with django_capture_on_commit_callbacks(execute=True):
        v2 = publish_new(admin_user, document, en=EN + "new", zh=ZH + "新", material=True)
    status = _status(alice)
    assert (status.acknowledged, status.stale, status.version_id) == (False, True, v2.pk)
    assert "test-risk" in {s.code for s in selectors.outstanding_documents(user=alice, product=Product.VA_MARGIN)}
    assert Notification.objects.filter(user=alice, kind="disclosures.reacknowledge").count() == 1
    # charlie never acknowledged: outstanding, but not stale, and not told about an update.
    assert (_status(charlie).acknowledged, _status(charlie).stale) == (False, False)
    assert not Notification.objects.filter(user=charlie).exists()
    acknowledge(alice, v2)
    assert _status(alice).acknowledged


def test_non_material_update_keeps_acknowledgements_valid_and_notifies_nobody(admin_user, alice, document, v1, django_capture_on_commit_callbacks):
    acknowledge(alice, v1)
    with django_capture_on_commit_callbacks(execute=True):
        v2 = publish_new(admin_user, document, en=EN + "typo fixed", zh=ZH + "修正", material=False)
    status = _status(alice)
    assert (status.acknowledged, status.stale, status.version_id) == (True, False, v2.pk)
    assert "test-risk" not in {s.code for s in selectors.outstanding_documents(user=alice, product=Product.VA_MARGIN)}
    assert not Notification.objects.filter(user=alice).exists()


def test_notification_is_in_the_clients_language(admin_user, document, v1, django_capture_on_commit_callbacks):
    from tests.helpers import make_user

    chinese = make_user("client", email="chan@example.com", language="zh-hant")
    acknowledge(chinese, v1, "zh-hant")
    with django_capture_on_commit_callbacks(execute=True):
        publish_new(admin_user, document, en=EN + "n", zh=ZH + "新", material=True)
    assert "測試風險" in Notification.objects.get(user=chinese).title


# --- Contract for other apps --------------------------------------------------------------------


def test_outstanding_documents_runs_one_query_whatever_the_number_of_documents(alice, django_assert_num_queries):
    with django_assert_num_queries(1):
        selectors.outstanding_documents(user=alice, product=Product.PERPETUALS)


def test_clients_with_outstanding_uses_two_queries_and_finds_exactly_the_outstanding(admin_user, alice, charlie, document, v1):
    shipped = DocumentVersion.objects.filter(status=VersionStatus.PUBLISHED, document__requirements__product=Product.VA_MARGIN)
    for version in shipped:
        acknowledge(alice, version)
    with CaptureQueriesContext(connection) as queries:
        result = selectors.clients_with_outstanding(product=Product.VA_MARGIN)
    assert len(queries) == 2
    assert charlie.pk in result and alice.pk not in result
    assert selectors.clients_with_outstanding(product=Product.VA_MARGIN, user_ids=[alice.pk]) == set()
    assert selectors.clients_with_outstanding(product=Product.VA_MARGIN, user_ids=[]) == set()
    publish_new(admin_user, document, en=EN + "m", zh=ZH + "m", material=True)
    assert selectors.clients_with_outstanding(product=Product.VA_MARGIN, user_ids=[alice.pk]) == {alice.pk}


def test_document_status_reason_and_url(alice, v1):
    status = _status(alice)
    assert status.reason == "Not yet acknowledged."
    assert status.url == "/disclosures/documents/test-risk/"
    assert status.title == "Test risk"
