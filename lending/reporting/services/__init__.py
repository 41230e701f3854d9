"""Writes of the reporting app, one sub-domain per module; every change audited in its transaction."""

from .capital import capital_approve, capital_propose, capital_reject
from .complaints import (
    complaint_acknowledge,
    complaint_assign,
    complaint_close,
    complaint_escalate,
    complaint_involved_ids,
    complaint_log,
    complaints_escalate_overdue,
)
from .deviations import deviation_approve, deviation_propose, deviation_reject, deviation_retire
from .exports import export_record
from .groups import (
    client_group_create,
    client_group_member_decide,
    client_group_member_end_decide,
    client_group_member_end_propose,
    client_group_member_propose,
)
from .packs import smf_pack_generate, smf_pack_monthly
from .records import record_request_create, record_request_download
from .retention import disposal_approve, disposal_reject, disposal_request

__all__ = [
    "capital_approve", "capital_propose", "capital_reject",
    "complaint_acknowledge", "complaint_assign", "complaint_close", "complaint_involved_ids", "complaint_escalate", "complaint_log",
    "complaints_escalate_overdue",
    "deviation_approve", "deviation_propose", "deviation_reject", "deviation_retire",
    "disposal_approve", "disposal_reject", "disposal_request",
    "export_record",
    "client_group_create", "client_group_member_decide", "client_group_member_end_decide", "client_group_member_end_propose",
    "client_group_member_propose",
    "record_request_create", "record_request_download",
    "smf_pack_generate", "smf_pack_monthly",
]
