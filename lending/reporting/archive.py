"""The per-client record archive for a data-access request: every record about one client in one ZIP,
with ``manifest.json`` listing each file's SHA-256 and size. ``archive_verify`` (and
``manage.py record_archive_verify``) recomputes them.

Other apps are read through their models, read-only. Each record type is dumped with every concrete
field (foreign keys as ids), so nothing about the client is left out by a hand-picked field list;
passwords and MFA secrets are not client records and are never included.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.utils import timezone

MANIFEST = "manifest.json"
USER_FIELDS = ["id", "email", "full_name", "preferred_language", "is_active", "date_joined", "last_login"]
# Records about the client the portal does not hold, said in the manifest rather than silently missing.
NOT_HELD: list[str] = []


def _rows(queryset, exclude=()) -> list[dict]:
    fields = [f for f in queryset.model._meta.concrete_fields if f.name not in exclude]
    out = []
    for obj in queryset:
        row = {}
        for f in fields:
            value = f.value_from_object(obj)
            if hasattr(value, "name") and hasattr(value, "storage"):  # a FieldFile
                value = value.name
            row[f.attname] = value
        out.append(row)
    return out


@dataclass
class _Archive:
    files: dict[str, bytes] = field(default_factory=dict)
    records: dict[str, set[str]] = field(default_factory=dict)

    def add_json(self, path: str, rows) -> None:
        self.files[path] = json.dumps(rows, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False, sort_keys=True).encode("utf-8")

    def add_records(self, path: str, label: str, queryset, exclude=()) -> list[dict]:
        rows = _rows(queryset, exclude)
        self.add_json(path, rows)
        self.records.setdefault(label, set()).update(str(r["id"]) for r in rows)
        return rows


def build(*, client, generated_by) -> tuple[bytes, str, int]:
    """The ZIP bytes, the manifest's SHA-256 and the number of files (manifest excluded)."""
    from disclosures.models import Acknowledgement, DocumentVersion, Serving
    from lending.models import (
        CollateralLine,
        CollateralPosition,
        Facility,
        FacilityApplication,
        FacilityTransaction,
        ReviewStep,
    )
    from lending.risk.models import BandChange, CollateralTopUp, MarginCall, ValuationSnapshot
    from onboarding.models import (
        ClientProfile,
        PerpetualsAccessRequest,
        PIAttestation,
        PIEvidence,
        SuitabilityAssessment,
        TrainingAttempt,
    )
    from portal.models import AuditEvent

    from .models import Complaint, GroupMembership, RelatedClientGroup

    a = _Archive()
    user = type(client).objects.filter(pk=client.pk)
    a.add_json("profile/user.json", list(user.values(*USER_FIELDS)))
    a.records["portal.user"] = {str(client.pk)}
    a.add_records("profile/client_profile.json", "onboarding.clientprofile", ClientProfile.objects.filter(user=client))
    attestations = PIAttestation.objects.filter(client=client).order_by("id")
    a.add_records("onboarding/pi_attestations.json", "onboarding.piattestation", attestations)
    evidence = PIEvidence.objects.filter(attestation__client=client).order_by("id")
    a.add_records("onboarding/pi_evidence.json", "onboarding.pievidence", evidence)
    for item in evidence:
        name = item.file.name.rsplit("/", 1)[-1]
        with item.file.open("rb") as fh:
            a.files[f"onboarding/evidence/{item.pk}-{name}"] = fh.read()
    a.add_records("onboarding/suitability_assessments.json", "onboarding.suitabilityassessment",
                  SuitabilityAssessment.objects.filter(client=client).order_by("id"))
    a.add_records("onboarding/training_attempts.json", "onboarding.trainingattempt", TrainingAttempt.objects.filter(client=client).order_by("id"))
    a.add_records("onboarding/perpetuals_requests.json", "onboarding.perpetualsaccessrequest",
                  PerpetualsAccessRequest.objects.filter(client=client).order_by("id"))

    a.add_records("disclosures/servings.json", "disclosures.serving", Serving.objects.filter(client=client).order_by("id"))
    acks = a.add_records("disclosures/acknowledgements.json", "disclosures.acknowledgement",
                         Acknowledgement.objects.filter(client=client).order_by("id"))
    # The exact text each acknowledgement was given, in the language it was shown in.
    versions = DocumentVersion.objects.filter(pk__in={r["version_id"] for r in acks}).select_related("document")
    by_id = {v.pk: v for v in versions}
    for ack in acks:
        version = by_id[ack["version_id"]]
        zh = ack["language"] == "zh-hant"
        stem = f"disclosures/texts/{version.document.code}-v{version.number}-{ack['language']}"
        a.files[f"{stem}.md"] = (version.body_zh if zh else version.body_en).encode("utf-8")
        a.files[f"{stem}.html"] = (version.html_zh if zh else version.html_en).encode("utf-8")

    applications = FacilityApplication.objects.filter(client=client).order_by("id")
    a.add_records("lending/applications.json", "lending.facilityapplication", applications)
    a.add_records("lending/collateral_lines.json", "lending.collateralline", CollateralLine.objects.filter(application__client=client).order_by("id"))
    a.add_records("lending/review_steps.json", "lending.reviewstep", ReviewStep.objects.filter(application__client=client).order_by("id"))
    a.add_records("lending/facilities.json", "lending.facility", Facility.objects.filter(client=client).order_by("id"))
    a.add_records("lending/collateral_positions.json", "lending.collateralposition",
                  CollateralPosition.objects.filter(facility__client=client).order_by("id"))
    a.add_records("lending/ledger.json", "lending.facilitytransaction", FacilityTransaction.objects.filter(facility__client=client).order_by("id"))
    from lending.servicing.interest import accrual_days
    from lending.servicing.models import InterestAccrual, Statement

    statements = Statement.objects.filter(client=client).order_by("id")
    a.add_records("servicing/statements.json", "servicing.statement", statements, exclude=("html", "pdf"))
    for st in statements:
        # Exactly as issued (their SHA-256 is in statements.json and again in this manifest).
        a.files[f"servicing/statements/{st.number}.pdf"] = bytes(st.pdf)
        a.files[f"servicing/statements/{st.number}.html"] = st.html.encode("utf-8")
    a.add_records("servicing/interest_accruals.json", "servicing.interestaccrual", InterestAccrual.objects.filter(
        facility_id__in=list(Facility.objects.filter(client=client).values_list("id", flat=True)), day__in=accrual_days()).order_by("id"))
    a.add_records("risk/margin_calls.json", "risk.margincall", MarginCall.objects.filter(client=client).order_by("id"))
    a.add_records("risk/collateral_top_ups.json", "risk.collateraltopup", CollateralTopUp.objects.filter(facility__client=client).order_by("id"))
    a.add_records("risk/band_changes.json", "risk.bandchange", BandChange.objects.filter(client=client).order_by("id"))
    a.add_records("risk/valuation_snapshots.json", "risk.valuationsnapshot", ValuationSnapshot.objects.filter(client=client).order_by("day", "id"))
    a.add_records("reporting/complaints.json", "reporting.complaint", Complaint.objects.filter(client=client).order_by("id"))
    # The client's own memberships and the groups they were put in; other members are other clients' records.
    a.add_records("reporting/group_memberships.json", "reporting.groupmembership", GroupMembership.objects.filter(client=client).order_by("id"))
    a.add_records("reporting/related_client_groups.json", "reporting.relatedclientgroup",
                  RelatedClientGroup.objects.filter(memberships__client=client).distinct().order_by("id"))

    # Every audit row about any of those records, and every row the client wrote themselves.
    about = Q(actor=client)
    for label, ids in a.records.items():
        if ids:
            about |= Q(object_type=label, object_id__in=sorted(ids))
    a.add_json("audit/audit_events.json", _rows(AuditEvent.objects.filter(about).order_by("id")))

    manifest = {
        "client_id": client.pk,
        "client_email": client.email,
        "generated_at": timezone.localtime().isoformat(),
        "generated_by": generated_by.email,
        "hash": "sha256",
        "files": [{"path": p, "sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)} for p, b in sorted(a.files.items())],
        "not_held": NOT_HELD,
    }
    manifest_bytes = json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, manifest_bytes)
        for path, data in sorted(a.files.items()):
            zf.writestr(path, data)
    return out.getvalue(), hashlib.sha256(manifest_bytes).hexdigest(), len(a.files)


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int
    problems: list[str]
    manifest_sha256: str


def archive_verify(data: bytes, *, manifest_sha256: str | None = None) -> VerifyReport:
    """Recompute every file's SHA-256 against the manifest; no file may be missing, altered or added."""
    problems: list[str] = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        if MANIFEST not in names:
            return VerifyReport(False, 0, ["manifest.json is missing"], "")
        manifest_bytes = zf.read(MANIFEST)
        digest = hashlib.sha256(manifest_bytes).hexdigest()
        if manifest_sha256 and digest != manifest_sha256:
            problems.append("manifest.json does not match the SHA-256 recorded for this request")
        manifest = json.loads(manifest_bytes)
        listed = {f["path"]: f for f in manifest["files"]}
        for path, entry in listed.items():
            if path not in names:
                problems.append(f"{path}: missing")
                continue
            content = zf.read(path)
            if hashlib.sha256(content).hexdigest() != entry["sha256"] or len(content) != entry["bytes"]:
                problems.append(f"{path}: content does not match its hash")
        for extra in sorted(names - set(listed) - {MANIFEST}):
            problems.append(f"{extra}: not in the manifest")
    return VerifyReport(not problems, len(listed), problems, digest)
