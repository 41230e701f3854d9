"""Bulk exports are recorded by ``portal.exports.export_record`` (the one owner, shared with disclosures)."""

from portal.exports import export_record

__all__ = ["export_record"]
