from __future__ import annotations

import pytest

from disclosures import services
from disclosures.models import Channel
from portal.products import Product

EN = "## Risk\n\nYou may lose **everything**.\n"
ZH = "## 風險\n\n你可能損失**全部**資金。\n"


def publish_new(actor, document, *, en: str, zh: str, material: bool = True, summary: str = "Update"):
    draft = services.version_create_draft(
        actor=actor, document_id=document.pk, body_en=en, body_zh=zh, change_summary=summary, material=material
    )
    return services.version_publish(actor=actor, version_id=draft.pk)


def acknowledge(user, version, language: str = "en", *, channel=Channel.WEB):
    serving = services.version_serve(user=user, version=version, language=language, channel=channel)
    ack, _created = services.acknowledgement_record(
        user=user,
        version_id=version.pk,
        language=language,
        content_hash=serving.content_hash,
        serving_token=serving.token,
        confirmed_read_and_understood=True,
        confirmed_invited_to_ask_and_seek_advice=True,
    )
    return ack


@pytest.fixture
def document(admin_user):
    """A document required for VA margin financing, with version 1 published."""
    return services.document_create(
        actor=admin_user, code="test-risk", title_en="Test risk", title_zh="測試風險", products=[Product.VA_MARGIN]
    )


@pytest.fixture
def v1(admin_user, document):
    return publish_new(admin_user, document, en=EN, zh=ZH, summary="First edition")
