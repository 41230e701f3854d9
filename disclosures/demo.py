"""Demo disclosures: the shipped set published, clients with up-to-date and with stale acknowledgements.

Run through ``manage.py seed_demo`` after onboarding.demo. Idempotent.

* every shipped document is published (migration 0003; loaded here too if missing);
* every demo client but the brand-new one acknowledges version 1 of each document
  (the new client has acknowledged nothing, so every document is outstanding);
* an administrator then publishes a *material* version 2 of the VA margin financing
  statement: the first half of those clients acknowledge it (up to date), the
  others keep only version 1 (stale, notified);
* a non-material draft of the general VA statement waits in the admin, ready for
  the preview-and-publish flow.
"""

from __future__ import annotations

from django.apps import apps
from django.db import transaction

from portal.audit import SYSTEM
from portal.context import RequestMeta, reset_request_meta, set_request_meta
from portal.models import User
from portal.permissions import Role

from . import loader, selectors, services
from .models import Acknowledgement, Channel, Document, DocumentVersion, VersionStatus

ADMIN_EMAIL = "admin@demo.vamargin.hk"

V2_SECTION_EN = """## Valuation and margin calls outside business hours

Because virtual assets trade around the clock, we revalue your virtual-asset collateral at least every five minutes, every day of the year, using the median of the prices from our approved sources. A margin call can therefore be issued at any hour, including at night, at weekends and on public holidays. The cure deadline still runs in Hong Kong business days, but if your utilisation reaches our close-out level we may sell collateral at once, without waiting for the deadline.

"""
V2_SECTION_ZH = """## 非營業時間的估值及追加保證金通知

由於虛擬資產全天候交易，本公司全年每日最少每五分鐘一次，以認可價格來源的中位數重新評估您的虛擬資產抵押品價值。因此，追加保證金通知可在任何時間發出，包括晚間、週末及公眾假期。補足期限仍以香港營業日計算，但如您的使用率達到本公司的平倉水平，本公司可無須等待期限屆滿而即時出售抵押品。

"""
DRAFT_NOTE_EN = "\n*Terms such as \"virtual asset\" have the meaning given in our client agreement.*\n"
DRAFT_NOTE_ZH = "\n*「虛擬資產」等詞語的涵義與本公司客戶協議所界定者相同。*\n"


def _demo_clients() -> tuple[list[User], list[User]]:
    """(demo clients who have read the disclosures, brand-new demo clients who have acknowledged nothing)."""
    from onboarding.demo import DEMO_CLIENTS, Stage

    by_email = {u.email: u for u in User.objects.filter(email__in=[c.email for c in DEMO_CLIENTS], groups__name=Role.CLIENT.value)}
    present = [(c, by_email[c.email]) for c in DEMO_CLIENTS if c.email in by_email]
    return [u for c, u in present if c.stage != Stage.NEW], [u for c, u in present if c.stage == Stage.NEW]


def _summary(users: list[User]) -> dict[str, list[str]]:
    """Each demo client under what their disclosures actually look like now."""
    summary: dict[str, list[str]] = {"up to date": [], "stale": [], "outstanding": []}
    for user in users:
        statuses = [s for docs in selectors.statuses_by_product(user=user).values() for s in docs]
        if any(s.stale for s in statuses):
            summary["stale"].append(user.email)
        elif any(not s.acknowledged for s in statuses):
            summary["outstanding"].append(user.email)
        else:
            summary["up to date"].append(user.email)
    return summary


def _acknowledge(user: User, version: DocumentVersion, language: str) -> bool:
    if Acknowledgement.objects.filter(client=user, version=version).exists():
        return False
    serving = services.version_serve(user=user, version=version, language=language, channel=Channel.WEB)
    services.acknowledgement_record(
        user=user,
        version_id=version.pk,
        language=language,
        content_hash=serving.content_hash,
        serving_token=serving.token,
        confirmed_read_and_understood=True,
        confirmed_invited_to_ask_and_seek_advice=True,
        channel=Channel.WEB,
    )
    return True


def _language(user: User) -> str:
    return "zh-hant" if user.preferred_language == "zh-hant" else "en"


@transaction.atomic
def _seed(stdout) -> None:
    loaded = loader.load_shipped_documents(apps)
    if loaded:
        stdout.write(f"  loaded {loaded} shipped disclosure documents")
    admin = User.objects.filter(email=ADMIN_EMAIL).first() or SYSTEM
    clients, new_clients = _demo_clients()
    financing = Document.objects.get(code=loader.VA_MARGIN_FINANCING)
    first_versions = DocumentVersion.objects.filter(number=1, document__code__in=[d.code for d in loader.SHIPPED_DOCUMENTS]).select_related("document")

    v2 = financing.versions.filter(number=2).first()
    if v2 is None:
        # Every client but the brand-new one acknowledges version 1 of every document first…
        for client in clients:
            for version in first_versions:
                if version.status == VersionStatus.PUBLISHED:
                    _acknowledge(client, version, _language(client))
        v1 = financing.versions.get(number=1)
        draft = services.version_create_draft(
            actor=admin,
            document_id=financing.pk,
            body_en=v1.body_en.replace("## Forced sale", V2_SECTION_EN + "## Forced sale"),
            body_zh=v1.body_zh.replace("## 強制出售", V2_SECTION_ZH + "## 強制出售"),
            change_summary="Adds how virtual-asset collateral is valued outside business hours and that margin calls may be issued at any hour.",
            change_summary_zh="新增非辦公時間如何為虛擬資產抵押品估值，以及追收保證金通知可於任何時間發出。",
            material=True,
        )
        # …then the material update makes their acknowledgements stale.
        v2 = services.version_publish(actor=admin, version_id=draft.pk)
        fanout = selectors.fanout_of(version_id=v2.pk)
        if fanout is not None:
            transaction.on_commit(lambda: services.fanout_run(fanout_id=fanout.pk, max_batches=100))
        stdout.write("  published a material version 2 of the VA margin financing statement")
    # The first half are up to date; the others keep only version 1 (stale).
    up_to_date = clients[: (len(clients) + 1) // 2]
    if v2.status == VersionStatus.PUBLISHED:
        for client in up_to_date:
            _acknowledge(client, v2, _language(client))

    general = Document.objects.get(code=loader.VA_GENERAL)
    if not general.versions.filter(number__gt=1).exists():
        current = general.versions.get(number=1)
        services.version_create_draft(
            actor=admin,
            document_id=general.pk,
            body_en=current.body_en + DRAFT_NOTE_EN,
            body_zh=current.body_zh + DRAFT_NOTE_ZH,
            change_summary="Clarifies that defined terms follow the client agreement (no change in substance).",
            change_summary_zh="澄清釋義詞語以客戶協議為準（內容並無實質改變）。",
            material=False,
        )
        stdout.write("  a non-material draft of the general VA statement is waiting in the admin for preview and publishing")
    if clients or new_clients:
        summary = _summary(clients + new_clients)
        stdout.write(
            "  disclosures up to date: " + (", ".join(summary["up to date"]) or "-")
            + "; stale (must re-acknowledge the VA margin financing statement): " + (", ".join(summary["stale"]) or "-")
            + "; outstanding (nothing acknowledged yet): " + (", ".join(summary["outstanding"]) or "-")
        )
    else:
        stdout.write("  no demo clients found: documents published, no acknowledgements seeded")


def seed(stdout) -> None:
    token = set_request_meta(RequestMeta(ip_address="127.0.0.1", user_agent="seed_demo"))
    try:
        _seed(stdout)
    finally:
        reset_request_meta(token)
