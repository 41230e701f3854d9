"""The portal's risk disclosure statements as shipped: loaded by migration 0003 into a fresh database.

The texts live in ``disclosures/content/<code>/{en,zh-hant}.md``. The migration
publishes each as version 1 of its document if the document does not exist yet;
afterwards administrators maintain them in the admin (new versions, preview,
publish), so editing a file here never changes a published text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.utils import timezone

from portal.products import Product

from . import text

CONTENT_DIR = Path(__file__).resolve().parent / "content"


@dataclass(frozen=True)
class ShippedDocument:
    code: str
    title_en: str
    title_zh: str
    products: tuple[str, ...]

    def body(self, language: str) -> str:
        return text.canonicalize((CONTENT_DIR / self.code / f"{language}.md").read_text(encoding="utf-8"))


SECURITIES_MARGIN = "securities-margin-risk"
VA_MARGIN_FINANCING = "va-margin-financing-risk"
VA_PERPETUALS = "va-perpetuals-risk"
PROFESSIONAL_INVESTOR = "professional-investor-treatment"
VA_GENERAL = "va-general-risk"

SHIPPED_DOCUMENTS = [
    ShippedDocument(
        SECURITIES_MARGIN,
        "Risk disclosure statement: securities margin trading",
        "風險披露聲明：證券保證金交易",
        (Product.VA_MARGIN,),
    ),
    ShippedDocument(
        VA_MARGIN_FINANCING,
        "Risk disclosure statement: virtual-asset margin financing",
        "風險披露聲明：虛擬資產保證金融資",
        (Product.VA_MARGIN,),
    ),
    ShippedDocument(
        VA_PERPETUALS,
        "Risk disclosure statement: virtual-asset perpetual contracts",
        "風險披露聲明：虛擬資產永續合約",
        (Product.PERPETUALS,),
    ),
    ShippedDocument(
        PROFESSIONAL_INVESTOR,
        "Consequences of being treated as a professional investor",
        "被視為專業投資者的後果",
        (Product.PERPETUALS, Product.PROFESSIONAL_INVESTOR),
    ),
    ShippedDocument(
        VA_GENERAL,
        "Risk disclosure statement: virtual assets",
        "風險披露聲明：虛擬資產",
        (Product.VA_MARGIN, Product.PERPETUALS),
    ),
]


def load_shipped_documents(apps) -> int:
    """Create and publish version 1 of every shipped document that does not exist yet. Returns how many.

    Works on the migration's historical models, so later schema changes do not break
    a fresh install. Publication by the migration is recorded on the version
    (``published_by`` empty, change summary says so).
    """
    Document = apps.get_model("disclosures", "Document")
    DocumentRequirement = apps.get_model("disclosures", "DocumentRequirement")
    DocumentVersion = apps.get_model("disclosures", "DocumentVersion")
    now = timezone.now()
    loaded = 0
    for shipped in SHIPPED_DOCUMENTS:
        if Document.objects.filter(code=shipped.code).exists():
            continue
        document = Document.objects.create(code=shipped.code, title_en=shipped.title_en, title_zh=shipped.title_zh)
        DocumentRequirement.objects.bulk_create(
            [DocumentRequirement(document=document, product=str(p.value)) for p in shipped.products]
        )
        body_en, body_zh = shipped.body("en"), shipped.body("zh-hant")
        DocumentVersion.objects.create(
            document=document,
            number=1,
            status="published",
            body_en=body_en,
            body_zh=body_zh,
            hash_en=text.content_hash(body_en),
            hash_zh=text.content_hash(body_zh),
            html_en=text.render(body_en),
            html_zh=text.render(body_zh),
            change_summary="First edition, published by the initial data migration.",
            material=True,
            effective_date=timezone.localdate(now),
            published_at=now,
        )
        loaded += 1
    return loaded
