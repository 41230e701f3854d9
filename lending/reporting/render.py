"""The SMF pack as a page, a PDF and an XLSX, all from its stored figures (``SmfPack.data``).

The page is in the reader's language; the PDF and the XLSX are bilingual (English and Traditional
Chinese), since they are what is handed to a responsible officer or the regulator.
"""

from __future__ import annotations

import io
from decimal import Decimal

from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from lending.risk.templatetags.risk_tags import shock
from portal.exports import cell

from .models import ControlArea
from .templatetags.reporting_tags import choice_label

LANGUAGES = ("en", "zh-hant")
BAR_WIDTH = 320


def both(label) -> str:
    """A label in English and Traditional Chinese: "Total margin loans / 孖展貸款總額". ``label`` is a (lazy)
    text or a function of no arguments that says it in the active language."""
    texts = []
    for lang in LANGUAGES:
        with translation.override(lang):
            texts.append(str(label() if callable(label) else label))
    return texts[0] if texts[0] == texts[1] else " / ".join(texts)


def book_source_text(source: dict) -> str:
    """Which valuation of the book the pack's figures stand on, in the active language (the page, the PDF and the XLSX)."""
    kind = (source or {}).get("kind")
    if kind == "snapshot" and source.get("end_of_day", True):
        return gettext("Book as at the end-of-day valuation of %(day)s.") % {"day": source.get("day")}
    if kind == "snapshot":
        return gettext("Book as at the valuation snapshot of %(day)s taken from %(time)s Hong Kong time, before that day's end-of-day valuation.") % {
            "day": source.get("day"), "time": (source.get("taken_at") or "")[11:16]}
    if kind == "live":
        return gettext("Book valued live (today's end-of-day valuation is not stored yet).")
    return gettext("No end-of-day valuation is stored on or before this date: book figures are empty.")


def _named(code, kind: str) -> str:
    """A state or kind stored in the pack as its code, named as the page names it (``choice_label``), in both languages."""
    return both(choice_label(code, kind))


def _d(value) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal("0")


def bars(rows: list[dict], *, value_key: str, label_key: str) -> dict:
    """Horizontal bar geometry for an inline SVG (no script, no external file)."""
    values = [_d(r.get(value_key)) for r in rows]
    top = max(values, default=Decimal("0")) or Decimal("1")
    out = []
    for i, (row, value) in enumerate(zip(rows, values, strict=True)):
        out.append({"y": i * 22, "width": int(BAR_WIDTH * value / top), "label": row.get(label_key), "value": value, "row": row})
    return {"bars": out, "height": max(22, 22 * len(out)), "width": BAR_WIDTH}


def pack_view(data: dict) -> dict:
    """What the templates need beyond the stored figures: chart geometry and the capital gauge."""
    total = data["total_loans"]
    gauge = None
    if total.get("multiple") is not None:
        ceiling = _d(total["ceiling"])
        scale = max(ceiling * Decimal("1.2"), _d(total["multiple"]), Decimal("1"))
        gauge = {
            "width": BAR_WIDTH,
            "multiple_x": int(BAR_WIDTH * min(_d(total["multiple"]), scale) / scale),
            "ceiling_x": int(BAR_WIDTH * ceiling / scale),
            "benchmark_x": int(BAR_WIDTH * _d(total["benchmark"]) / scale),
        }
    return {
        "gauge": gauge,
        "assets": bars(data["collateral_concentration"]["by_asset"], value_key="market_value", label_key="asset"),
        "clients": bars(data["client_concentration"]["top"], value_key="drawn", label_key="email"),
        "ages": bars(data["margin_calls"]["ages"], value_key="count", label_key="days"),
        "areas": ControlArea,
    }


# --- XLSX ---------------------------------------------------------------------------------------------------


L = {
    "figure": _("Figure"), "value": _("Value"), "as_of": _("As at"), "period_start": _("Period from"),
    "book_source": _("Book valued from"), "total_loans": _("Total margin loans (HKD)"), "liquid_capital": _("Liquid capital (HKD)"),
    "multiple": _("Loans ÷ liquid capital"), "ceiling": _("Policy ceiling (×)"), "benchmark": _("SMF benchmark (×)"),
    "within": _("Within the ceiling"), "headroom": _("Headroom to the ceiling (HKD)"),
    "lending_lv": _("Lending value, 26EC5 view (VA at the policy haircut, ≥ 60%)"),
    "capital_lv": _("Lending value, capital view (VA at a 100% haircut)"),
    "lending_uncovered": _("Loans not covered by lending value, 26EC5 view"),
    "capital_uncovered": _("Loans not covered by lending value, capital view"),
    "facilities_open": _("Facilities open"), "limits_total": _("Facility limits (HKD)"), "drawn_to_limits": _("Drawn ÷ limits"),
    "over_limit": _("Facilities drawn above their limit"), "client_limit_max": _("Client limit, policy (HKD)"),
    "clients_over": _("Clients above the client limit"), "firm_limit_max": _("Firm-wide limit, policy (HKD)"),
    "va_share_mv": _("VA share of collateral market value"), "va_share_lv": _("VA share of lending value"),
    "va_cap": _("VA share cap, policy"), "top_share": _("Top clients' share of loans"),
    "opened": _("Calls opened"), "met": _("Calls met"), "escalated": _("Calls escalated"), "closed_out": _("Calls closed out"),
    "waived": _("Calls waived"), "open_at_end": _("Calls open at the end of the period"), "hours_to_meet": _("Average hours to meet"),
    "stress_reports": _("Stress reports in the period"), "monthly_done": _("Monthly stress test stored"),
    "received": _("Complaints received"), "closed": _("Complaints closed"), "overdue": _("Complaints overdue at the end"),
    "deviations": _("Deviations in force"), "yes": _("yes"), "no": _("no"),
    "client": _("Client"), "drawn": _("Drawn (HKD)"), "share": _("Share"), "limits": _("Limits (HKD)"), "call": _("Call"),
    "state": _("State"), "opened_at": _("Opened"), "shortfall": _("Shortfall at opening (HKD)"), "report": _("Report"),
    "kind": _("Kind"), "shocks": _("Shocks BTC / ETH / securities"), "in_call": _("Facilities in margin call"),
    "close_out": _("Facilities at close-out"), "version": _("Version"), "btc": _("BTC haircut"), "eth": _("ETH haircut"),
    "securities": _("Securities haircuts"), "decided": _("Decided"), "reference": _("Reference"), "area": _("Control area"),
    "benchmark_departed": _("Benchmark"), "departure": _("Departure"), "control": _("Compensating control"),
    "approved_by": _("Approved by"), "review_date": _("Next review"), "age_days": _("Age (days)"), "count": _("Count"),
    "not_recorded": _("Not recorded in the portal"), "instrument": _("Instrument"), "issuer": _("Issuer"), "sector": _("Sector"),
    "pledged": _("Quantity pledged"), "clients": _("Clients"), "price": _("Price (HKD)"), "market_value": _("Market value (HKD)"),
    "group": _("Related-client group"), "members": _("Members"), "lending_value": _("Lending value (HKD)"),
    "share_loans": _("Share of loans"), "share_limits": _("Share of limits"), "share_lv": _("Share of lending value"),
    "capacity_share": _("Share of the firm's lending capacity"), "within_client_limit": _("Limits within the client limit"),
    "within_share_max": _("Within the largest share for one client"), "groups_in_force": _("Related-client groups in force"),
    "relationship": _("Relationship"),
    "limit_from": _("Limit before (HKD)"), "limit_to": _("Limit after (HKD)"), "by": _("Proposed by"), "reason": _("Reason"),
}


def _yes(value) -> str:
    if value is None:
        return ""
    return both(L["yes"] if value else L["no"])


def pack_xlsx(data: dict) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    summary = wb.active
    summary.title = "SMF"
    t, c, cl, mc, st, cp = (data["total_loans"], data["credit_limits"], data["collateral_concentration"], data["margin_calls"],
                            data["stress_testing"], data["complaints"])
    source = data["book_source"]
    rows = [
        (both(L["as_of"]), data["as_of"]), (both(L["period_start"]), data["period_start"]),
        (both(L["book_source"]), both(lambda: book_source_text(source))),
        (both(ControlArea.TOTAL_LOANS.label), ""),
        (both(L["total_loans"]), _d(t["total_loans"])), (both(L["liquid_capital"]), t["liquid_capital"] and _d(t["liquid_capital"])),
        (both(L["multiple"]), t["multiple"] and _d(t["multiple"])), (both(L["ceiling"]), t["ceiling"] and _d(t["ceiling"])),
        (both(L["benchmark"]), _d(t["benchmark"])), (both(L["within"]), _yes(t["within_ceiling"])),
        (both(L["headroom"]), t["headroom"] and _d(t["headroom"])),
        (both(L["lending_lv"]), _d(t["lending_view"]["lending_value"])), (both(L["lending_uncovered"]), _d(t["lending_view"]["uncovered"])),
        (both(L["capital_lv"]), _d(t["capital_view"]["lending_value"])), (both(L["capital_uncovered"]), _d(t["capital_view"]["uncovered"])),
        (both(ControlArea.CREDIT_LIMITS.label), ""),
        (both(L["facilities_open"]), c["facilities_open"]), (both(L["limits_total"]), _d(c["limits_total"])),
        (both(L["drawn_to_limits"]), c["drawn_to_limits"] and _d(c["drawn_to_limits"])), (both(L["over_limit"]), c["over_limit"]),
        (both(L["client_limit_max"]), c["client_limit_max"] and _d(c["client_limit_max"])),
        (both(L["clients_over"]), len(c["clients_over_client_limit"])),
        (both(L["firm_limit_max"]), c["firm_limit_max"] and _d(c["firm_limit_max"])),
        (both(ControlArea.COLLATERAL_CONCENTRATION.label), ""),
        *[(_named(r["asset"], "collateral"), _d(r["market_value"])) for r in cl["by_asset"]],
        (both(L["va_share_mv"]), cl["va_share_of_market_value"] and _d(cl["va_share_of_market_value"])),
        (both(L["va_share_lv"]), cl["va_share_of_lending_value"] and _d(cl["va_share_of_lending_value"])),
        (both(L["va_cap"]), cl["va_share_cap"] and _d(cl["va_share_cap"])),
        (both(ControlArea.CLIENT_CONCENTRATION.label), ""),
        (both(L["top_share"]), data["client_concentration"]["top_share"] and _d(data["client_concentration"]["top_share"])),
        (both(L["groups_in_force"]), data["client_concentration"].get("groups_in_force", "")),
        (both(ControlArea.HAIRCUTS.label), ""),
        (both(L["version"]), data["haircuts"]["in_force"] and data["haircuts"]["in_force"]["version"]),
        (both(ControlArea.MARGIN_CALLS.label), ""),
        *[(both(L[k]), mc[k]) for k in ("opened", "met", "escalated", "closed_out", "waived", "open_at_end")],
        (both(L["hours_to_meet"]), mc["average_hours_to_meet"] and _d(mc["average_hours_to_meet"])),
        (both(ControlArea.STRESS_TESTING.label), ""),
        (both(L["stress_reports"]), len(st["reports"])), (both(L["monthly_done"]), _yes(st["monthly_done"])),
        (both(_("Complaints")), ""),
        (both(L["received"]), cp["received"]), (both(L["closed"]), cp["closed"]), (both(L["overdue"]), cp["overdue_at_end"]),
        (both(L["deviations"]), len(data["deviations"])),
    ]
    summary.append([both(L["figure"]), both(L["value"])])
    for label, value in rows:
        summary.append([cell(label), cell(value if value is not None else "")])
    summary.column_dimensions["A"].width = 70
    summary.column_dimensions["B"].width = 24

    def sheet(title, header, body):
        ws = wb.create_sheet(title)
        ws.append([both(h) for h in header])
        for r in body:
            ws.append([cell(v) for v in r])

    sheet("Clients", [L["client"], L["drawn"], L["share"], L["limits"]],
          [(r["email"], _d(r["drawn"]), r["share"] and _d(r["share"]), _d(r["limits"])) for r in data["client_concentration"]["top"]])
    sheet("Groups", [L["group"], L["members"], L["drawn"], L["share_loans"], L["limits"], L["share_limits"], L["lending_value"],
                     L["share_lv"], L["capacity_share"], L["within_client_limit"], L["within_share_max"]],
          [(f"{g['reference']} {g['name']}", "; ".join(f"{m['email']} ({m['relationship']}): {m['drawn']}" for m in g["members"]),
            _d(g["drawn"]), g["share_of_loans"] and _d(g["share_of_loans"]), _d(g["limits"]), g["share_of_limits"] and _d(g["share_of_limits"]),
            _d(g["lending_value"]), g["share_of_lending_value"] and _d(g["share_of_lending_value"]), g["capacity_share"] and _d(g["capacity_share"]),
            _yes(g["within_client_limit"]), _yes(g["within_concentration_max"])) for g in data["client_concentration"].get("groups") or []])
    inst = cl.get("instruments") or {}
    sheet("Instruments", [L["instrument"], L["issuer"], L["sector"], L["pledged"], L["price"], L["market_value"], L["share"], L["clients"]],
          [(r["code"] + " " + r["name"], r["issuer"], r["sector"], _d(r["pledged"]), r.get("price") and _d(r["price"]),
            r.get("market_value") and _d(r["market_value"]), r.get("share") and _d(r["share"]), r["clients"]) for r in inst.get("by_instrument", [])])
    sheet("Sectors", [L["sector"], L["market_value"], L["share"], L["clients"]],
          [(r["name"], r.get("market_value") and _d(r["market_value"]), r.get("share") and _d(r["share"]), r["clients"]) for r in inst.get("by_sector", [])])
    sheet("Issuers", [L["issuer"], L["market_value"], L["share"], L["clients"]],
          [(r["name"], r.get("market_value") and _d(r["market_value"]), r.get("share") and _d(r["share"]), r["clients"]) for r in inst.get("by_issuer", [])])
    sheet("Limit changes", [L["reference"], L["state"], L["limit_from"], L["limit_to"], L["by"], L["decided"], L["reason"]],
          [(r["facility"], _named(r["state"], "limit_change"), _d(r["old_limit"]), _d(r["new_limit"]), r["by"], r["decided_by"] or "", r["reason"])
           for r in data["credit_limits"].get("changes", [])])
    sheet("Margin calls", [L["call"], L["client"], L["state"], L["opened_at"], L["shortfall"]],
          [(f"MC-{r['id']}", r["client"], _named(r["state"], "call"), r["opened_at"], _d(r["shortfall_at_open"])) for r in mc["opened_calls"]])
    sheet("Call ages", [L["age_days"], L["count"]], [(r["days"], r["count"]) for r in mc["ages"]])
    sheet("Stress", [L["report"], L["kind"], L["shocks"], L["in_call"], L["close_out"], L["shortfall"]],
          [(r["id"], _named(r["kind"], "stress"), " / ".join(shock(r[k]) for k in ("btc_shock", "eth_shock", "securities_shock")), r["margin_call"], r["close_out"],
            r["shortfall"] and _d(r["shortfall"])) for r in st["reports"]])
    hc = data["haircuts"]
    sheet("Haircuts", [L["version"], L["state"], L["btc"], L["eth"], L["securities"], L["decided"]],
          [(r["version"], _named(r["status"], "policy"), _d(r["btc"]), _d(r["eth"]), ", ".join(f"{k} {v}" for k, v in r["securities"].items()), r["decided_at"] or "")
           for r in ([hc["in_force"]] if hc["in_force"] else []) + hc["changes"]])
    sheet("Deviations", [L["reference"], L["area"], L["benchmark_departed"], L["departure"], L["control"], L["approved_by"], L["review_date"]],
          [(r["reference"], both(ControlArea(r["area"]).label), r["benchmark"], r["departure"], r["compensating_control"],
            r["approved_by"] or "", r["review_date"]) for r in data["deviations"]])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# --- PDF ------------------------------------------------------------------------------------------------------


def pack_html(data: dict) -> str:
    """One HTML document with the English part, then the Traditional Chinese part (each in its own language)."""
    from portal import pdf

    return pdf.render_html("reporting/pack_document.html", {"d": data, "v": pack_view(data), "languages": LANGUAGES}, language="en")


def pack_pdf(data: dict) -> bytes:
    """The bilingual PDF through the portal's shared renderer (the one statements use)."""
    from portal import pdf

    return pdf.html_to_pdf(pack_html(data))
