"""Writes for the collateral book: instruments, the custody ledger, back-office imports, breaks, machine keys.

Custody ledger API (other apps call these, inside their own transaction):

* ``custody_pledge(client_id=, instrument_id=, quantity=, facility_id=, actor=, reference=)`` — moves
  ``quantity`` from free to pledged; refused (``insufficient_free``) when it is more than is free across
  all the client's facilities. One conditional UPDATE; the database CHECK backs it up.
* ``custody_release(...)`` — the reverse, for a facility that has that much pledged.
* ``holding_set(...)`` — the back office's held quantity (imports call it).
The pledge, release and disposal live in ``custody`` (imports nothing of the risk engine, which calls them).
Reads are in ``selectors`` (``custody_for_client``, ``custody_balance``).
"""

# ruff: noqa: S608 - SQL text here is built only from constants in this module; every value is a bound parameter.

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from lending import locks
from lending.inputs import date_text, datetime_text, file_text_checked
from portal.access import ensure_staff_permission
from portal.audit import SYSTEM, System, audit_log, snapshot
from portal.errors import ConflictError, NotFoundError, PortalError
from portal.permissions import Perm

from . import selectors
from .custody import (  # noqa: F401 - the custody ledger API, also reached from here
    QUANTUM,
    _actor_label,
    _balance_locked,
    _entry,
    _instrument,
    _quantity,
    _user_or_none,
    column,
    custody_dispose,
    custody_pledge,
    custody_release,
    fmt_qty,
    qty_column,
)
from .models import (
    BreakKind,
    CustodyBalance,
    CustodyEntry,
    EntryKind,
    ImportBatch,
    ImportKind,
    ImportStatus,
    Instrument,
    InstrumentKind,
    MachineKey,
    MarginableList,
    ReconciliationBreak,
    break_message,
    normalise_code,
)

HK = ZoneInfo("Asia/Hong_Kong")
SHIPPED_INSTRUMENTS = Path(__file__).parent / "data" / "instruments_hk.csv"
MAX_LINES = 200_000


def file_text(content):
    """A file's text as sent: bytes are read as UTF-8 (a byte-order mark dropped) or refused, never guessed at
    or replaced (U+FFFD in a name or a batch id). The one check every import (batches, instrument files) and
    every channel (API, page upload, command) meets; text passes through."""
    if isinstance(content, (bytes, bytearray)):
        try:
            return bytes(content).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise PortalError("invalid_file", _("The file is not UTF-8 text."), {"file": [_("UTF-8 text.")]}) from None
    return content


# --- Instrument master --------------------------------------------------------------------------------


# How a flag is written: JSON true/false, or in a file (or a form) one of these words, any case.
TRUE_WORDS = ("true", "1", "yes", "y")
FALSE_WORDS = ("false", "0", "no", "n")
BOARD_LOT_MAX = 2_147_483_647  # the column's range (a positive 32-bit integer)


def _refuse_field(where: str, name: str, message, hint) -> PortalError:
    return PortalError("validation_error", where + str(message), {name: [hint]})


def _flag(value, name: str, where: str) -> bool:
    """A yes/no field: True or False as sent, or a word of ``TRUE_WORDS`` / ``FALSE_WORDS``; anything else
    (another word, an empty cell, null) is refused rather than read as "no"."""
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    shown = "null" if value is None else f"{str(value)[:40]!r}"
    raise _refuse_field(where, name, _("%(field)s must be true or false (in a file also 1 or 0, yes or no), not %(value)s.") % {
        "field": name, "value": shown}, _("true or false."))


def _text(value, name: str, where: str, *, max_length: int) -> str:
    """A text field, trimmed; refused when it is not text or longer than its column (never cut short)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _refuse_field(where, name, _("%(field)s must be text.") % {"field": name}, _("Text."))
    text = value.strip()
    if len(text) > max_length:
        raise _refuse_field(where, name, _("%(field)s is longer than %(n)s characters (%(length)s).") % {
            "field": name, "n": max_length, "length": len(text)}, _("At most %(n)s characters.") % {"n": max_length})
    return text


# A new instrument's values where its row leaves a field out.
INSTRUMENT_DEFAULTS = {"kind": InstrumentKind.SECURITY, "name_zh": "", "board_lot": 1, "currency": "HKD", "issuer": "", "sector": "",
                       "margin_class": "", "suspended": False, "active": True}


def _instrument_clean(given: dict, *, current: dict | None, line: int | None = None) -> dict:
    """The fields ``given`` (a file's columns, a PATCH's fields) cleaned, checked together with the instrument's
    other values (``current``; None for a new instrument, which takes ``INSTRUMENT_DEFAULTS``). Returns only
    the given fields of an existing instrument, so a field nobody sent keeps its value; every field of a new one."""
    given = {name: value for name, value in given.items() if name in Instrument.FIELDS}
    row = (INSTRUMENT_DEFAULTS | (current or {})) | given
    where = str(_("Line %(line)s: ") % {"line": line}) if line else ""
    code = normalise_code(row.get("code"))
    kind = _text(row.get("kind"), "kind", where, max_length=16) or InstrumentKind.SECURITY
    if kind not in InstrumentKind.values:
        raise PortalError("validation_error", where + _("kind must be security or virtual_asset."), {"kind": [_("Unknown kind.")]})
    if kind == InstrumentKind.SECURITY and not (code.isdigit() and len(code) == 5):
        raise PortalError("validation_error", where + _("%(code)s is not an HKEX stock code (up to 5 digits).") % {"code": code or "''"}, {"code": [_("5 digits.")]})
    if kind == InstrumentKind.VIRTUAL_ASSET and code not in ("BTC", "ETH"):
        raise PortalError("validation_error", where + _("Only bitcoin (BTC) and ether (ETH) are accepted as VA collateral."), {"code": [_("BTC or ETH.")]})
    name_en = _text(row.get("name_en"), "name_en", where, max_length=200)
    if not name_en:
        raise PortalError("validation_error", where + _("The English name is required."), {"name_en": [_("Required.")]})
    raw_lot = row.get("board_lot")
    if raw_lot is None or raw_lot == "":
        lot = 1
    elif isinstance(raw_lot, int) and not isinstance(raw_lot, bool):
        lot = raw_lot
    elif isinstance(raw_lot, str) and raw_lot.strip().isascii() and raw_lot.strip().isdigit():
        lot = int(raw_lot.strip())
    else:
        lot = 0
    if not 1 <= lot <= BOARD_LOT_MAX:
        raise PortalError("validation_error", where + _("The board lot must be a whole number of at least 1."), {"board_lot": [_("At least 1.")]})
    currency = _text(row.get("currency"), "currency", where, max_length=40).upper() or "HKD"
    if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
        raise _refuse_field(where, "currency", _("currency must be a three-letter code such as HKD, not %(value)s.") % {"value": f"{currency[:40]!r}"},
                            _("Three letters."))
    issuer = _text(row.get("issuer"), "issuer", where, max_length=200)
    if not issuer and kind == InstrumentKind.SECURITY and (current is None or "issuer" in given):
        issuer = name_en  # a security's issuer, unless named, is the company itself
    clean = {
        "code": code, "kind": kind, "name_en": name_en, "name_zh": _text(row.get("name_zh"), "name_zh", where, max_length=200),
        "board_lot": lot, "currency": currency,
        "issuer": issuer,
        "sector": _text(row.get("sector"), "sector", where, max_length=80),
        "margin_class": _text(row.get("margin_class"), "margin_class", where, max_length=8),
        "suspended": _flag(row["suspended"], "suspended", where),
        "active": _flag(row["active"], "active", where),
    }
    return clean if current is None else {name: clean[name] for name in given} | {"code": code}


def instruments_parse(text: str | bytes, *, model=Instrument) -> list[dict]:
    """Rows of the instrument CSV (header: code,kind,name_en,name_zh,board_lot,currency,issuer,sector,margin_class,
    suspended[,active]; only code and name_en required). A column the file leaves out says nothing about it: an
    existing instrument keeps its value (a file of names must not reset board lots, empty Chinese names or resume
    every suspended security); a new one takes the default. ``model``: the class data migrations pass."""
    text = file_text(text)
    if not isinstance(text, str):
        raise PortalError("invalid_file", _("Send the instrument file as text/csv."))
    file_text_checked(text)
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name for name in (reader.fieldnames or []) if name in Instrument.FIELDS]
    missing = {"code", "name_en"} - set(header)
    if missing:
        raise PortalError("invalid_file", _("The instrument file needs the columns %(columns)s.") % {"columns": ", ".join(sorted(missing))})
    given = [(number, {name: row.get(name) for name in header}) for number, row in enumerate(reader, start=2)]
    codes = [normalise_code(row.get("code")) for _number, row in given]
    current = {i["code"]: i for i in model.objects.filter(code__in=codes).values(*Instrument.FIELDS)}
    rows = [_instrument_clean(row, current=current.get(code), line=number) for (number, row), code in zip(given, codes, strict=True)]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise PortalError("invalid_file", _("Codes listed twice: %(codes)s.") % {"codes": ", ".join(duplicates)})
    return rows


def _upsert_instruments(model, rows: list[dict], now) -> dict:
    """Create or update instruments (a model class is passed so data migrations can use it too). ``changes``:
    each updated instrument's changed fields, their values before and after (for the audit row)."""
    existing = {i.code: i for i in model.objects.filter(code__in=[r["code"] for r in rows])}
    created, changed = [], []
    for row in rows:
        current = existing.get(row["code"])
        if current is None:
            created.append(model(**(INSTRUMENT_DEFAULTS | row), created_at=now, updated_at=now, suspended_since=now if row.get("suspended") else None))
            continue
        diff = {k: (getattr(current, k), v) for k, v in row.items() if getattr(current, k) != v}
        if diff:
            if "suspended" in diff:
                current.suspended_since = now if row["suspended"] else None
            for k, (_old, v) in diff.items():
                setattr(current, k, v)
            current.updated_at = now
            changed.append((current, diff))
    model.objects.bulk_create(created)
    for obj, _diff in changed:
        obj.save()
    return {"created": [c.code for c in created], "updated": {obj.code: sorted(diff) for obj, diff in changed},
            "changes": {obj.code: diff for obj, diff in changed}}


def load_shipped_instruments(apps=None) -> dict:
    """The data migration's loader: the shipped list of Hong Kong securities plus BTC and ETH."""
    model = apps.get_model("collateral", "Instrument") if apps else Instrument
    rows = instruments_parse(SHIPPED_INSTRUMENTS.read_text(encoding="utf-8"), model=model)
    result = _upsert_instruments(model, rows, timezone.now())
    del result["changes"]
    return result


def _margin_class_change_refuse(changed: list[str]) -> None:
    """A security's margin class sets its haircut where the marginable list has no entry for it: a haircut
    is changed only through the collateral policy (maker-checker), never by the instrument master."""
    if changed:
        raise PortalError(
            "margin_class_change_refused",
            _("The margin class of an existing instrument cannot be changed here (%(codes)s): it sets the instrument's haircut, which is changed through the collateral policy (a per-instrument entry on the marginable list, proposed and approved by two people).") % {
                "codes": ", ".join(changed[:20])},
            {"margin_class": [_("Changed through the collateral policy.")]},
        )


# A change of these reaches the live book: the haircut of a suspended security, a delisted one's positions.
STANDING = ("suspended", "active")


def _standing_apply(instrument_ids: list[int]) -> dict | None:
    """Instruments whose standing changed, brought to the live book by the engine in this transaction
    (their holders re-haircut and revalued, calls opened where they now breach); its counts, or None."""
    if not instrument_ids:
        return None
    from lending.risk.revaluation import instruments_apply

    return instruments_apply(instrument_ids=sorted(instrument_ids))


@transaction.atomic
def instruments_load(*, actor, text: str | bytes, source: str = "file") -> dict:
    """Load an instrument file (create new codes, update changed ones); one bad row refuses the file. A change
    of an existing instrument's margin class refuses it too; a suspension or resumption reaches the book."""
    if not isinstance(actor, System):
        ensure_staff_permission(actor=actor, perm=Perm.PRICE_MANAGE)
    rows = instruments_parse(text)
    locks.book()  # taken before the instrument rows: the book it revalues follows them
    classes = dict(Instrument.objects.filter(code__in=[r["code"] for r in rows]).values_list("code", "margin_class"))
    _margin_class_change_refuse([r["code"] for r in rows if r["code"] in classes and "margin_class" in r and r["margin_class"] != classes[r["code"]]])
    result = _upsert_instruments(Instrument, rows, timezone.now())
    changes = result.pop("changes")
    moved = [code for code, fields in result["updated"].items() if set(fields) & set(STANDING)]
    counts = _standing_apply(list(Instrument.objects.filter(code__in=moved).values_list("pk", flat=True)))
    audit_log(actor=actor, action="collateral.instruments.loaded", object_type="collateral.instrument", object_id="",
              before={"updated": {code: {k: old for k, (old, _new) in diff.items()} for code, diff in changes.items()}},
              after={"source": source[:100], "rows": len(rows), "created": result["created"][:200],
                     "updated": {code: {k: new for k, (_old, new) in diff.items()} for code, diff in changes.items()}}
              | ({"book": counts} if counts is not None else {}))
    return result


@transaction.atomic
def instrument_update(*, actor, code: str, changes: dict) -> Instrument:
    """Staff change one instrument (name, board lot, issuer, sector, class, suspension, active)."""
    ensure_staff_permission(actor=actor, perm=Perm.PRICE_MANAGE)
    code = normalise_code(code)
    locks.book()  # taken before the instrument row: the book it revalues follows it
    instrument = Instrument.objects.select_for_update(no_key=True).filter(code=code).first()
    if instrument is None:
        raise NotFoundError("not_found", _("No instrument %(code)s.") % {"code": code})
    allowed = set(Instrument.FIELDS) - {"code", "kind"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise PortalError("validation_error", _("These fields cannot be changed: %(fields)s.") % {"fields": ", ".join(unknown)},
                          {name: [_("Not changeable.")] for name in unknown})
    clean = _instrument_clean(changes, current={name: getattr(instrument, name) for name in Instrument.FIELDS})
    _margin_class_change_refuse([code] if clean.get("margin_class", instrument.margin_class) != instrument.margin_class else [])
    before = snapshot(instrument, Instrument.FIELDS)
    now = timezone.now()
    if clean.get("suspended", instrument.suspended) != instrument.suspended:
        instrument.suspended_since = now if clean["suspended"] else None
    moved = any(name in clean and clean[name] != getattr(instrument, name) for name in STANDING)
    for name, value in clean.items():
        setattr(instrument, name, value)
    instrument.updated_at = now
    instrument.save()
    counts = _standing_apply([instrument.pk] if moved else [])
    audit_log(actor=actor, action="collateral.instrument.updated", obj=instrument, before=before,
              after=snapshot(instrument, Instrument.FIELDS) | ({"book": counts} if counts is not None else {}))
    return instrument


# --- Custody ledger --------------------------------------------------------------------------------------


def holding_set(*, client_id: int, instrument: Instrument, quantity: Decimal, batch=None, actor=SYSTEM) -> CustodyEntry | None:
    """Set the held quantity the back office reports; None when unchanged. Raises IntegrityError below pledged."""
    balance = _balance_locked(client_id, instrument.pk)
    delta = quantity - balance.held
    if not delta:
        return None
    balance.held = quantity
    balance.updated_at = timezone.now()
    balance.save(update_fields=["held", "updated_at"])
    return _entry(balance, instrument, kind=EntryKind.HOLDING, quantity=delta, batch=batch, actor=actor,
                  reference=batch.batch_id if batch else "")


def _holdings_set_many(*, changes: list[tuple[int, Instrument, Decimal]], balances: dict, batch, actor) -> int:
    """Set many held quantities in a fixed number of statements, whatever the number of lines: the missing
    balance rows created and locked, the changed ones updated and their ledger entries inserted in bulk.
    ``balances`` ({(client id, instrument id): locked balance}) is completed in place. Every holding of the
    batch is marked reported as of its ``as_of``. The caller has checked no new holding is below what is
    pledged (the CHECK constraint refuses it anyway) and none was reported as of a later time."""
    missing = {(cid, item.pk) for cid, item, _qty in changes if (cid, item.pk) not in balances}
    if missing:
        CustodyBalance.objects.bulk_create([CustodyBalance(client_id=c, instrument_id=i) for c, i in sorted(missing)], ignore_conflicts=True)
        rows = CustodyBalance.objects.select_for_update(no_key=True).filter(client_id__in={c for c, _i in missing}, instrument_id__in={i for _c, i in missing})
        for b in rows:
            balances.setdefault((b.client_id, b.instrument_id), b)
    now, changed, reported, entries = timezone.now(), [], [], []
    as_of = batch.as_of if batch is not None else None
    label, user = _actor_label(actor)[:120], _user_or_none(actor)
    for cid, item, qty in changes:
        b = balances[(cid, item.pk)]
        delta = qty - b.held
        if not delta:
            if as_of is not None and b.reported_as_of != as_of:
                b.reported_as_of = as_of
                reported.append(b)
            continue
        b.held, b.updated_at = qty, now
        b.reported_as_of = as_of or b.reported_as_of
        changed.append(b)
        entries.append(CustodyEntry(
            balance=b, client_id=cid, instrument=item, instrument_kind=item.kind, kind=EntryKind.HOLDING, quantity=delta,
            held_after=b.held, pledged_after=b.pledged, batch=batch, repledge_allowed=False,
            reference=(batch.batch_id if batch else "")[:100], actor=user, actor_label=label, created_at=now))
    CustodyBalance.objects.bulk_update(changed, ["held", "updated_at", "reported_as_of"], batch_size=500)
    CustodyBalance.objects.bulk_update(reported, ["reported_as_of"], batch_size=500)
    CustodyEntry.objects.bulk_create(entries, batch_size=500)
    return len(changed)


# --- Reconciliation breaks ----------------------------------------------------------------------------


def _breaks_raise_many(items: list[dict]) -> int:
    """``break_raise`` for many keys at once (one SELECT, then bulk writes): each dict has its fields."""
    if not items:
        return 0
    keys = [i["key"][:120] for i in items]
    open_ = {b.key: b for b in ReconciliationBreak.objects.filter(key__in=keys, resolved_at__isnull=True)}
    new, refreshed = [], []
    for i in items:
        key = i["key"][:120]
        current = open_.get(key)
        if current is not None:
            current.message, current.portal_quantity, current.external_quantity = i["message"], i.get("portal_quantity"), i.get("external_quantity")
            current.message_code, current.message_params = i["message_code"], i["message_params"]
            current.batch = i.get("batch") or current.batch
            refreshed.append(current)
        else:
            new.append(ReconciliationBreak(kind=i["kind"], key=key, message=i["message"], message_code=i["message_code"],
                                           message_params=i["message_params"], client_id=i.get("client_id"),
                                           instrument_id=i.get("instrument_id"), portal_quantity=i.get("portal_quantity"),
                                           external_quantity=i.get("external_quantity"), batch=i.get("batch")))
    ReconciliationBreak.objects.bulk_update(refreshed, ["message", "message_code", "message_params", "portal_quantity", "external_quantity", "batch"],
                                            batch_size=500)
    ReconciliationBreak.objects.bulk_create(new, batch_size=500)
    return len(items)


def _said(message_code: str, **params) -> dict:
    """A break's words: its code and parameters (read in each reader's language) and the English sentence kept as its record."""
    params = {k: str(v) for k, v in params.items()}
    with translation.override("en"):
        return {"message": break_message(message_code, params), "message_code": message_code, "message_params": params}


def break_raise(*, kind: str, key: str, message_code: str, params: dict, client_id=None, instrument_id=None, portal_quantity=None,
                external_quantity=None, batch=None) -> ReconciliationBreak:
    """Raise (or refresh) the open break for ``key``; it says ``BREAK_TEXTS[message_code]`` filled with ``params``."""
    words = _said(message_code, **params)
    current = ReconciliationBreak.objects.filter(key=key[:120], resolved_at__isnull=True).first()
    if current:
        for name, value in words.items():
            setattr(current, name, value)
        current.portal_quantity, current.external_quantity = portal_quantity, external_quantity
        current.batch = batch or current.batch
        current.save(update_fields=["message", "message_code", "message_params", "portal_quantity", "external_quantity", "batch"])
        return current
    return ReconciliationBreak.objects.create(
        kind=kind, key=key[:120], client_id=client_id, instrument_id=instrument_id,
        portal_quantity=portal_quantity, external_quantity=external_quantity, batch=batch, **words,
    )


def _breaks_clear(*, prefix: str, keep: set[str], now) -> int:
    """Resolve, as cleared by the newer statement, the open breaks under ``prefix`` no longer found."""
    return (
        ReconciliationBreak.objects.filter(key__startswith=prefix, resolved_at__isnull=True).exclude(key__in=keep)
        .update(resolved_at=now, resolution_note="Cleared: the next statement agreed.")
    )


@transaction.atomic
def break_resolve(*, actor, break_id: int, note: str) -> ReconciliationBreak:
    ensure_staff_permission(actor=actor, perm=Perm.FACILITY_OPERATE)
    if not (note or "").strip():
        raise PortalError("validation_error", _("Say how the break was resolved."), {"note": [_("Required.")]})
    item = ReconciliationBreak.objects.select_for_update(no_key=True).filter(pk=break_id).first()
    if item is None:
        raise NotFoundError("not_found", _("No such break."))
    if item.resolved_at is not None:
        raise ConflictError("invalid_state", _("This break is already resolved."))
    item.resolved_at, item.resolved_by, item.resolution_note = timezone.now(), actor, note.strip()
    item.save(update_fields=["resolved_at", "resolved_by", "resolution_note"])
    audit_log(actor=actor, action="collateral.break.resolved", obj=item, before={"open": True}, after={"open": False, "note": item.resolution_note})
    return item


# --- Back-office imports ------------------------------------------------------------------------------

# The columns of each import's CSV (documented in the README; the API takes the same names as JSON).
COLUMNS = {
    ImportKind.POSITIONS_EOD: ("batch_id", "as_of", "account", "instrument", "quantity"),
    ImportKind.POSITIONS_INTRADAY: ("batch_id", "as_of", "account", "instrument", "quantity"),
    ImportKind.CUSTODY_STATEMENT: ("batch_id", "as_of", "account", "instrument", "held", "pledged"),
    ImportKind.PRICES_EOD: ("batch_id", "as_of", "instrument", "price", "source"),
    ImportKind.PRICES_INTRADAY: ("batch_id", "as_of", "instrument", "price", "source"),
}
PRICE_KINDS = (ImportKind.PRICES_EOD, ImportKind.PRICES_INTRADAY)
# A batch id is part of the batch's address (GET …/imports/<kind>/<batch_id>/): characters a URL path segment
# carries as they are, up to the column's length.
BATCH_ID_MAX = ImportBatch._meta.get_field("batch_id").max_length
BATCH_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{BATCH_ID_MAX}}}")


@dataclass
class Batch:
    """A parsed batch: its id, date and lines (dicts with the line number under ``line``)."""

    kind: str
    batch_id: str
    as_of: datetime | None
    lines: list[dict]
    errors: list[dict] = field(default_factory=list)
    sha256: str = ""
    legacy_sha256: str = ""  # the hash of the raw text, which batches stored before the parsed hash carry

    @property
    def hashes(self) -> set[str]:
        """The hashes an earlier delivery of this same batch may carry."""
        return {h for h in (self.sha256, self.legacy_sha256) if h}


NUMBER_FIELDS = ("quantity", "held", "pledged", "price")


def _batch_hash(*, kind: str, batch_id: str, as_of: datetime, lines: list[dict]) -> str:
    """The SHA-256 of the batch as parsed, not of its text: each value trimmed, codes as the master writes them
    (``700`` is ``00700``), numbers as numbers (``52,000`` is ``52000.00``), the time as a time. The same batch
    sent as CSV or JSON, or with other spacing or line ends, has the same hash (and replays); other content not."""

    def value(name: str, raw) -> str:
        text = "" if raw is None else str(raw).strip()
        if name == "instrument":
            return normalise_code(text)
        if name in NUMBER_FIELDS:
            try:
                number = Decimal(text.replace(",", ""))
            except InvalidOperation:
                return text
            # A number the import will refuse anyway is hashed as written (1e999999999 is not spelt out).
            if number.is_finite() and abs(number.adjusted()) <= 40:
                return format(number.normalize(), "f")
        return text

    columns = COLUMNS[kind][2:]
    canonical = json.dumps({"batch_id": batch_id, "as_of": as_of.isoformat(), "lines": [[value(c, x.get(c)) for c in columns] for x in lines]},
                           ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _err(line, field_name, code, text, params: dict | None = None) -> dict:
    """A line error of a batch's report. The problem is kept as its message (``text``, marked for translation and
    not yet filled) and ``params``, so each reader reads it in their language (``models.batch_error_text``);
    ``message`` keeps the English sentence, the record."""
    params = {name: str(value) for name, value in (params or {}).items()}
    with translation.override(None):
        msgid = str(text)
    with translation.override("en"):
        message = str(text) % params if params else str(text)
    return {"line": line, "field": field_name, "code": code, "message": message, "text": msgid, "params": params}


def _parse_as_of(value) -> datetime | None:
    text = str(value or "").strip()
    if not text:
        return None
    # A bare date first: Django's parse_datetime also reads one, as midnight, which would date an end-of-day
    # file before the same day's intraday quotes (the price authority keeps those as the newer prices).
    day = date_text(text)
    if day is not None:
        when = datetime.combine(day, time(16, 10), tzinfo=HK)  # the HKEX close, for an end-of-day date
        now = timezone.now()
        if day == now.astimezone(HK).date() and when > now:
            when = now  # today's before the close: as of its arrival, not a time still to come
    else:
        when = datetime_text(text)
        if when is None:
            return None
    if timezone.is_naive(when):
        when = when.replace(tzinfo=HK)
    return when


def batch_parse(*, kind: str, content: str | bytes | dict | list) -> Batch:
    """A CSV text (header row) or a JSON document ``{"batch_id", "as_of", "lines": [...]}`` as a Batch.

    A file that is not a batch (nothing sent, missing columns, no lines, no or mixed batch ids or dates, a bad
    or future as_of) is refused outright (invalid_file, 400, nothing stored); line-level problems are collected
    afterwards so the report of a rejected batch (kept, 422) names every bad line.
    """
    if kind not in COLUMNS:
        raise PortalError("validation_error", _("Unknown import kind."), {"kind": [_("One of %(kinds)s.") % {"kinds": ", ".join(COLUMNS)}]})
    content = file_text(content)
    file_text_checked(content)
    # An empty body reaches here as "" or, through the API, as an empty mapping.
    if (isinstance(content, str) and not content.strip("\ufeff \t\r\n")) or (isinstance(content, dict) and not content):
        raise PortalError("invalid_file", _("Nothing was sent: a batch is CSV text (a header row, then its lines) or a JSON object {batch_id, as_of, lines}."))
    if isinstance(content, str) and content.lstrip().startswith(("{", "[")):
        try:
            content = json.loads(content)
        except json.JSONDecodeError as exc:
            raise PortalError("invalid_file", _("Not valid JSON: %(exc)s") % {"exc": exc}) from None
    columns = COLUMNS[kind]
    if isinstance(content, dict):
        batch_id, as_of_text = str(content.get("batch_id") or "").strip(), content.get("as_of")
        raw = content.get("lines")
        if not isinstance(raw, list):
            raise PortalError("invalid_file", _("The batch needs a list of lines."), {"lines": [_("Required.")]})
        lines = []
        for number, item in enumerate(raw, start=1):
            if not isinstance(item, dict):
                raise PortalError("invalid_file", _("Line %(line)s is not an object.") % {"line": number})
            lines.append({"line": number, **{c: item.get(c) for c in columns[2:]}})
        legacy = json.dumps({"batch_id": batch_id, "as_of": str(as_of_text or ""), "lines": [{c: str(x.get(c)) for c in columns[2:]} for x in lines]}, sort_keys=True)
    elif isinstance(content, str):
        text = content.lstrip("\ufeff")
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in columns if c not in header]
        if missing:
            raise PortalError("invalid_file", _("The file needs the columns %(columns)s (missing: %(missing)s).") % {
                "columns": ",".join(columns), "missing": ", ".join(missing)})
        reader.fieldnames = header
        lines, first = [], None
        for number, row in enumerate(reader, start=2):
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            said = {name: (row.get(name) or "").strip() for name in ("batch_id", "as_of")}
            if first is None:
                first = (number, said)
            for name in ("batch_id", "as_of"):
                if said[name] != first[1][name]:
                    raise PortalError("invalid_file", _("Line %(line)s has %(field)s %(value)s, not %(first)s as line %(first_line)s: every line of a file carries the same batch_id and as_of.") % {
                        "line": number, "field": name, "value": f"{said[name][:80]!r}", "first": f"{first[1][name][:80]!r}", "first_line": first[0]}, {name: [_("Not the same on every line.")]})
            lines.append({"line": number, **{c: (row.get(c) or "").strip() for c in columns[2:]}})
        if not lines:
            raise PortalError("invalid_file", _("The batch has no lines."), {"lines": [_("Required.")]})
        batch_id, as_of_text = first[1]["batch_id"], first[1]["as_of"]
        legacy = text.replace("\r\n", "\n").strip()
    else:
        raise PortalError("invalid_file", _("Send a CSV file or a JSON batch."))
    if not batch_id:
        raise PortalError("invalid_file", _("The batch needs a batch_id of 1 to 80 characters."), {"batch_id": [_("Required.")]})
    if not BATCH_ID.fullmatch(batch_id):
        raise PortalError("invalid_file", _("batch_id %(value)s is not usable: up to %(n)s letters, digits, '-', '_', '.' or ':' (it is part of the batch's address, …/imports/<kind>/<batch_id>/).") % {
            "value": f"{batch_id[:40]!r}", "n": BATCH_ID_MAX}, {"batch_id": [_("Letters, digits, - _ . : only.")]})
    if not lines:
        raise PortalError("invalid_file", _("The batch has no lines."), {"lines": [_("Required.")]})
    if len(lines) > MAX_LINES:
        raise PortalError("invalid_file", _("At most %(n)s lines per batch.") % {"n": f"{MAX_LINES:,}"})
    as_of = _parse_as_of(as_of_text)
    if as_of is None:
        raise PortalError("invalid_file", _("as_of must be an ISO date or date-time (e.g. 2026-03-02 or 2026-03-02T16:10:00+08:00)."), {"as_of": [_("Required.")]})
    if as_of > timezone.now() + timezone.timedelta(minutes=5):
        raise PortalError("invalid_file", _("as_of is in the future."), {"as_of": [_("In the future.")]})
    return Batch(kind=kind, batch_id=batch_id, as_of=as_of, lines=lines, sha256=_batch_hash(kind=kind, batch_id=batch_id, as_of=as_of, lines=lines),
                 legacy_sha256=hashlib.sha256(legacy.encode()).hexdigest())


@dataclass
class _Positions:
    """The lines that passed, the (client, instrument) of every line that named a known account and instrument
    (valid or not), and each account's first line, for reporting a holding the file leaves out."""

    clean: list[dict]
    listed: set[tuple[int, int]]
    first_line: dict[int, tuple[str, int]]


def _validate_positions(batch: Batch, *, va: bool) -> _Positions:
    """Resolve accounts and instruments and check quantities; every problem becomes a line error."""
    accounts = selectors.margin_accounts(numbers={str(x.get("account") or "").strip() for x in batch.lines})
    codes = {normalise_code(x.get("instrument")) for x in batch.lines}
    instruments = {i.code: i for i in Instrument.objects.filter(code__in=codes)}
    # A delisted instrument is still reported (updated, zeroed) for an account holding it; no account starts to.
    delisted = [i.pk for i in instruments.values() if not i.active]
    holders = set(CustodyBalance.objects.filter(instrument_id__in=delisted, client_id__in=list(accounts.values())).filter(
        Q(held__gt=0) | Q(pledged__gt=0)).values_list("client_id", "instrument_id")) if delisted and accounts else set()
    seen: dict[tuple, int] = {}
    clean = []
    first_line: dict[int, tuple[str, int]] = {}
    qty_fields = ("held", "pledged") if va else ("quantity",)
    qty_col = qty_column()
    for x in batch.lines:
        n, ok = x["line"], True
        account = str(x.get("account") or "").strip()
        client_id = accounts.get(account)
        if not account:
            batch.errors.append(_err(n, "account", "required", _("The account number is missing.")))
            ok = False
        elif client_id is None:
            batch.errors.append(_err(n, "account", "no_margin_account", _("Account %(account)s is not a confirmed securities margin account of any client."), {"account": account}))
            ok = False
        code = normalise_code(x.get("instrument"))
        instrument = instruments.get(code)
        if instrument is None:
            batch.errors.append(_err(n, "instrument", "unknown_instrument", _("Unknown instrument %(code)s (not in the instrument master)."), {"code": code or "''"}))
            ok = False
        elif not instrument.active and (client_id, instrument.pk) not in holders:
            batch.errors.append(_err(n, "instrument", "delisted_instrument", _("%(code)s is delisted: a file reports it only for an account that holds it, and account %(account)s does not."), {
                "code": code, "account": account or "''"}))
            ok = False
        elif instrument.is_virtual_asset != va:
            message = _("%(code)s is a listed security; securities come in the positions file.") if va else _("%(code)s is a virtual asset; VA holdings come in the custody statement.")
            batch.errors.append(_err(n, "instrument", "wrong_instrument_kind", message, {"code": code}))
            ok = False
        values = {}
        for name in qty_fields:
            raw = str(x.get(name) if x.get(name) is not None else "").strip().replace(",", "")
            try:
                qty = Decimal(raw)
                if not qty.is_finite():
                    raise InvalidOperation
            except InvalidOperation:
                batch.errors.append(_err(n, name, "invalid_quantity", _("%(field)s %(value)s is not a number."), {"field": name, "value": f"{raw!r}"}))
                ok = False
                continue
            if qty < 0:
                batch.errors.append(_err(n, name, "negative_quantity", _("%(field)s %(value)s is negative."), {"field": name, "value": raw}))
                ok = False
            elif qty_col.too_large(qty):
                batch.errors.append(_err(n, name, "out_of_range", _("%(field)s %(value)s is out of range: the custody ledger keeps at most %(max)s, to %(digits)s significant digits."), {
                    "field": name, "value": raw[:40], "max": fmt_qty(qty_col.maximum), "digits": qty_col.digits}))
                ok = False
            elif qty != qty.quantize(QUANTUM):
                batch.errors.append(_err(n, name, "invalid_quantity", _("%(field)s has more than 8 decimal places."), {"field": name}))
                ok = False
            elif instrument is not None and not instrument.is_virtual_asset and qty != qty.to_integral_value():
                batch.errors.append(_err(n, name, "invalid_quantity", _("A securities quantity is a whole number of shares (%(value)s)."), {"value": raw}))
                ok = False
            values[name] = qty.quantize(QUANTUM) if ok else None
        if va and ok and values["pledged"] > values["held"]:
            batch.errors.append(_err(n, "pledged", "pledged_above_held", _("pledged %(p)s is more than held %(h)s."), {"p": values["pledged"], "h": values["held"]}))
            ok = False
        if client_id is not None:
            first_line.setdefault(client_id, (account, n))
        if client_id is not None and instrument is not None:
            key = (client_id, instrument.pk)
            if key in seen:
                batch.errors.append(_err(n, "instrument", "duplicate_line", _("Account %(account)s and %(code)s are already on line %(other)s."), {"account": account, "code": code, "other": seen[key]}))
                ok = False
            seen[key] = n
        if ok:
            clean.append({"line": n, "client_id": client_id, "account": account, "instrument": instrument, **values})
    return _Positions(clean=clean, listed=set(seen), first_line=first_line)


def _report(batch: Batch, *, status: str, actor, machine_key, channel: str, applied: int = 0, summary: dict | None = None) -> ImportBatch:
    return ImportBatch.objects.create(
        kind=batch.kind, batch_id=batch.batch_id, content_sha256=batch.sha256, status=status, as_of=batch.as_of, channel=channel[:10],
        line_count=len(batch.lines), applied_count=applied, errors=batch.errors[:1000], summary=summary or {},
        submitted_by=_user_or_none(actor), machine_key=machine_key,
    )


def _previous(batch: Batch) -> ImportBatch | None:
    """Idempotency: the same batch id sent again returns its earlier result; an applied id with other content is refused."""
    applied = ImportBatch.objects.filter(kind=batch.kind, batch_id=batch.batch_id, status=ImportStatus.APPLIED).first()
    if applied is not None:
        if applied.content_sha256 not in batch.hashes:
            raise ConflictError("batch_id_reused", _("Batch %(id)s was already applied with different content; send changes under a new batch id.") % {"id": batch.batch_id})
        return applied
    return ImportBatch.objects.filter(kind=batch.kind, batch_id=batch.batch_id, content_sha256__in=batch.hashes, status=ImportStatus.REJECTED).first()


def _authorise_import(actor, machine_key) -> None:
    if machine_key is not None:
        if machine_key.revoked_at is not None:
            raise PortalError("key_revoked", _("This API key is revoked."))
        return
    if not isinstance(actor, System):
        ensure_staff_permission(actor=actor, perm=Perm.FACILITY_OPERATE)


@dataclass
class ImportResult:
    batch: ImportBatch
    replayed: bool


def batch_import(*, kind: str, content, actor=None, machine_key: MachineKey | None = None, channel: str = "api") -> ImportResult:
    """Parse, validate and apply one batch: all its lines or none of them. A rejected batch is kept with its report."""
    if machine_key is not None:
        actor = System(machine_key.label)
    _authorise_import(actor, machine_key)
    batch = batch_parse(kind=kind, content=content)
    try:
        with transaction.atomic():
            previous = _previous(batch)
            if previous is not None:
                return ImportResult(previous, True)
            return ImportResult(_import_apply(batch, actor=actor, machine_key=machine_key, channel=channel), False)
    except IntegrityError:
        # Another delivery of the same batch won the race: answer with its result.
        applied = ImportBatch.objects.filter(kind=batch.kind, batch_id=batch.batch_id, status=ImportStatus.APPLIED).first()
        if applied is None:
            raise
        if applied.content_sha256 not in batch.hashes:
            raise ConflictError("batch_id_reused", _("Batch %(id)s was already applied with different content; send changes under a new batch id.") % {"id": batch.batch_id}) from None
        return ImportResult(applied, True)


def _rejected(batch: Batch, *, actor, machine_key, channel) -> ImportBatch:
    """Keep the rejected batch and its report in a transaction of its own (nothing of the batch applied)."""
    with transaction.atomic():
        record = _report(batch, status=ImportStatus.REJECTED, actor=actor, machine_key=machine_key, channel=channel)
        audit_log(actor=actor, action=f"collateral.import.{batch.kind}.rejected", obj=record,
                  after={"batch_id": batch.batch_id, "lines": len(batch.lines), "errors": len(batch.errors)})
    return record


# The price authority's field names, as the price file's columns.
_QUOTE_FIELDS = {"price_hkd": "price", "as_of": "as_of", "source": "source", "asset": "instrument"}


def _quote_refusal(exc: PortalError, rows: list[dict]) -> dict:
    """The price authority's refusal of a row (bounds, freshness, band) as that row's line error: strict, it
    says which row of the list it was given (``exc.row``) and the reason alone (``exc.reason``); the line is
    the file's. A refusal of no one row stays a batch-level error."""
    number = getattr(exc, "row", None)
    if number is not None and 1 <= number <= len(rows):
        line, message = rows[number - 1]["line"], exc.reason
    else:
        line, message = 0, exc.message
    field_name = next((name for key, name in _QUOTE_FIELDS.items() if key in exc.fields), "")
    return _err(line, field_name, exc.code, message)


def _prices_apply(batch: Batch, *, actor, machine_key, channel) -> ImportBatch:
    """Securities prices as quotes from their named sources, through the risk engine's price governance
    (bounds, median, alarms, overrides); its reference refresh revalues the book in this transaction."""
    from lending.risk import services as risk_services
    from lending.risk.models import PriceQuote, PriceSource

    price_col = column(PriceQuote, "price_hkd")
    codes = {normalise_code(x.get("instrument")) for x in batch.lines}
    instruments = {i.code: i for i in Instrument.objects.filter(code__in=codes, kind=InstrumentKind.SECURITY, active=True)}
    sources = {s.code: s for s in PriceSource.objects.filter(active=True)}
    rows, seen = [], {}
    for x in batch.lines:
        n, ok = x["line"], True
        code = normalise_code(x.get("instrument"))
        if code not in instruments:
            batch.errors.append(_err(n, "instrument", "unknown_instrument", _("Unknown instrument %(code)s (not a listed security of the instrument master)."), {"code": code or "''"}))
            ok = False
        source = str(x.get("source") or "").strip()
        if source not in sources:
            batch.errors.append(_err(n, "source", "unknown_source", _("Unknown or inactive price source %(source)s."), {"source": f"{source!r}"}))
            ok = False
        raw = str(x.get("price") or "").strip().replace(",", "")
        try:
            price = Decimal(raw)
            if not price.is_finite() or price <= 0:
                raise InvalidOperation
        except InvalidOperation:
            batch.errors.append(_err(n, "price", "invalid_price", _("price %(value)s is not a positive number."), {"value": f"{raw[:40]!r}"}))
            ok = False
        else:
            if price_col.too_large(price):
                batch.errors.append(_err(n, "price", "out_of_range", _("price %(value)s is out of range: a price is kept up to HK$%(max)s, to %(digits)s significant digits."), {
                    "value": raw[:40], "max": f"{price_col.maximum:,}", "digits": price_col.digits}))
                ok = False
            elif price_col.too_fine(price):
                # Refused rather than rounded: the file's figure is the price the back office means.
                batch.errors.append(_err(n, "price", "invalid_price", _("price %(value)s has more than %(places)s decimal places."), {
                    "value": raw[:40], "places": price_col.places}))
                ok = False
        if ok and (code, source) in seen:
            batch.errors.append(_err(n, "instrument", "duplicate_line", _("%(code)s from %(source)s is already on line %(other)s."), {"code": code, "source": source, "other": seen[(code, source)]}))
            ok = False
        if ok:
            seen[(code, source)] = n
            rows.append({"source_code": source, "asset": code, "price_hkd": price, "as_of": batch.as_of, "line": n})
    if not batch.errors:
        try:
            with transaction.atomic():
                risk_services.quotes_record(actor=SYSTEM, strict=True, rows=[{k: v for k, v in r.items() if k != "line"} for r in rows])
        except PortalError as exc:
            batch.errors.append(_quote_refusal(exc, rows))
    if batch.errors:
        return _rejected(batch, actor=actor, machine_key=machine_key, channel=channel)
    record = _report(batch, status=ImportStatus.APPLIED, actor=actor, machine_key=machine_key, channel=channel, applied=len(rows),
                     summary={"quotes": len(rows), "instruments": len({r["asset"] for r in rows})})
    audit_log(actor=actor, action=f"collateral.import.{batch.kind}.applied", obj=record,
              after={"batch_id": batch.batch_id, "as_of": batch.as_of, "quotes": len(rows)})
    return record


def _import_apply(batch: Batch, *, actor, machine_key, channel) -> ImportBatch:
    if batch.kind in PRICE_KINDS:
        return _prices_apply(batch, actor=actor, machine_key=machine_key, channel=channel)
    va = batch.kind == ImportKind.CUSTODY_STATEMENT
    positions = _validate_positions(batch, va=va)
    clean = positions.clean
    eod = batch.kind == ImportKind.POSITIONS_EOD
    # Lock the balances this batch touches (and, end of day, every security balance of its accounts).
    client_ids = {x["client_id"] for x in clean}
    balances = {
        (b.client_id, b.instrument_id): b
        for b in CustodyBalance.objects.select_for_update(no_key=True).select_related("instrument").filter(client_id__in=client_ids)
    }
    targets: dict[tuple, tuple] = {(x["client_id"], x["instrument"].pk): (x["instrument"], x["held" if va else "quantity"], x) for x in clean}
    if eod or va:
        # A full statement for each account it lists: a holding it no longer lists is now zero (a line it
        # lists with an error is not left out: that line is reported for itself).
        kind = "virtual_asset" if va else "security"
        for key, b in balances.items():
            if key not in targets and key not in positions.listed and b.instrument.kind == kind and b.held:
                targets[key] = (b.instrument, Decimal("0"), None)
    # A file dated before an account's holdings were last reported (by a positions file, or for VA the custody
    # statement) is out of date for that account: its lines are refused rather than put older figures over
    # newer ones (the price authority keeps the newer quote the same way).
    reported: dict[int, datetime] = {}
    for (cid, _iid), b in balances.items():
        if b.instrument.is_virtual_asset == va and b.reported_as_of is not None:
            reported[cid] = max(reported.get(cid, b.reported_as_of), b.reported_as_of)
    for x in clean:
        latest = reported.get(x["client_id"])
        if latest is not None and latest > batch.as_of:
            batch.errors.append(_err(x["line"], "as_of", "older_than_reported", _(
                "This file, as of %(as_of)s, is older than the holdings of account %(account)s, reported as of %(reported)s: an older file does not replace newer figures."), {
                "as_of": f"{batch.as_of.astimezone(HK):%Y-%m-%d %H:%M} HKT", "account": x["account"], "reported": f"{latest.astimezone(HK):%Y-%m-%d %H:%M} HKT"}))
    # In the same pass as the line errors, so one report lists every problem of the file.
    for key, (instrument, qty, x) in targets.items():
        b = balances.get(key)
        if b is None or qty >= b.pledged:
            continue
        if x is not None:
            batch.errors.append(_err(
                x["line"], "held" if va else "quantity", "below_pledged",
                _("%(code)s for account %(account)s: %(qty)s is below the %(pledged)s pledged to facilities; pledged collateral must be released in the portal first."), {
                    "code": instrument.code, "account": x["account"], "qty": fmt_qty(qty), "pledged": fmt_qty(b.pledged)},
            ))
        else:
            account, line = positions.first_line[key[0]]
            batch.errors.append(_err(
                line, "instrument", "below_pledged",
                _("The file lists account %(account)s without %(code)s, which would make its holding 0, below the %(pledged)s pledged to facilities; list the holding, or release the pledged collateral in the portal first."), {
                    "code": instrument.code, "account": account, "pledged": fmt_qty(b.pledged)},
            ))
    if batch.errors:
        batch.errors.sort(key=lambda e: e["line"])
        return _rejected(batch, actor=actor, machine_key=machine_key, channel=channel)
    record = _report(batch, status=ImportStatus.APPLIED, actor=actor, machine_key=machine_key, channel=channel)
    now = timezone.now()
    prefix = f"{batch.kind}:"
    keep: set[str] = set()
    raised: list[dict] = []
    for key, (instrument, qty, x) in targets.items():
        b = balances.get(key)
        before = b.held if b else Decimal("0")
        # A holding the file leaves out is named by its account's number as the file gives it.
        account = x["account"] if x else positions.first_line[key[0]][0]
        if eod and b is not None and before != qty:
            # The portal's holding (after the day's intraday updates) differs from the back office's close.
            k = f"positions_eod:{key[0]}:{instrument.pk}"
            keep.add(k)
            raised.append({"kind": BreakKind.POSITION_DIFFERENCE, "key": k, "client_id": key[0], "instrument_id": instrument.pk,
                           "portal_quantity": before, "external_quantity": qty, "batch": record,
                           **_said("position_difference", code=instrument.code, account=account, portal=fmt_qty(before),
                                   external=fmt_qty(qty))})
        if va and x is not None:
            portal_pledged = b.pledged if b else Decimal("0")
            if portal_pledged != x["pledged"]:
                k = f"custody_statement:{key[0]}:{instrument.pk}"
                keep.add(k)
                raised.append({"kind": BreakKind.VA_PLEDGE_DIFFERENCE, "key": k, "client_id": key[0], "instrument_id": instrument.pk,
                               "portal_quantity": portal_pledged, "external_quantity": x["pledged"], "batch": record,
                               **_said("va_pledge_difference", code=instrument.code, account=x["account"], portal=fmt_qty(portal_pledged),
                                       external=fmt_qty(x["pledged"]))})
    # Every holding of the batch in a fixed number of statements (not a few per line).
    changed = _holdings_set_many(changes=[(key[0], instrument, qty) for key, (instrument, qty, _x) in targets.items()],
                                 balances=balances, batch=record, actor=actor)
    if va:
        # Portal VA pledges of clients the statement does not list at all.
        listed = {x["client_id"] for x in clean}
        unlisted = list(CustodyBalance.objects.filter(instrument__kind=InstrumentKind.VIRTUAL_ASSET, pledged__gt=0).exclude(client_id__in=listed)
                        .select_related("instrument"))
        numbers = selectors.margin_account_numbers(user_ids={b.client_id for b in unlisted})
        for b in unlisted:
            k = f"custody_statement:{b.client_id}:{b.instrument_id}"
            keep.add(k)
            raised.append({"kind": BreakKind.VA_PLEDGE_DIFFERENCE, "key": k, "client_id": b.client_id, "instrument_id": b.instrument_id,
                           "portal_quantity": b.pledged, "external_quantity": Decimal("0"), "batch": record,
                           **_said("va_pledge_not_on_statement", code=b.instrument.code, portal=fmt_qty(b.pledged),
                                   account=numbers.get(b.client_id, "—"))})
    breaks = _breaks_raise_many(raised)
    if va:
        _breaks_clear(prefix=prefix, keep=keep, now=now)
        _breaks_clear(prefix="custody_missing:", keep=set(), now=now)
    record.applied_count = len(clean)
    record.summary = {"holdings_changed": changed, "breaks": breaks, "accounts": len(client_ids)}
    record.save(update_fields=["applied_count", "summary"])
    audit_log(actor=actor, action=f"collateral.import.{batch.kind}.applied", obj=record,
              after={"batch_id": batch.batch_id, "as_of": batch.as_of, "lines": len(clean), "holdings_changed": changed, "breaks": breaks})
    return record


@transaction.atomic
def custody_reconcile_daily(*, now=None) -> int:
    """Beat (daily): raise a break when no custody statement arrived in the last day while VA is pledged.

    The per-line comparison runs when each statement is imported; this job makes a missing
    statement visible too, so the daily reconciliation can never silently not happen.
    """
    now = now or timezone.now()
    pledged = CustodyBalance.objects.filter(instrument__kind=InstrumentKind.VIRTUAL_ASSET, pledged__gt=0).exists()
    last = ImportBatch.objects.filter(kind=ImportKind.CUSTODY_STATEMENT, status=ImportStatus.APPLIED).order_by("-received_at").first()
    if not pledged or (last is not None and last.received_at >= now - timezone.timedelta(hours=26)):
        return 0
    day = now.astimezone(HK).date().isoformat()
    if last is not None:
        said = {"message_code": "statement_missing_since", "params": {"since": f"{last.received_at.astimezone(HK):%Y-%m-%d %H:%M}"}}
    else:
        said = {"message_code": "statement_missing_ever", "params": {}}
    break_raise(kind=BreakKind.STATEMENT_MISSING, key=f"custody_missing:{day}", **said)
    return 1


# --- Machine keys ------------------------------------------------------------------------------------------

KEY_PREFIX = "vmk"


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_key(*, name: str, actor, replaces=None) -> tuple[MachineKey, str]:
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = MachineKey.objects.create(name=name, prefix=prefix, secret_sha256=_secret_hash(secret), created_by=actor, replaces=replaces)
    return key, f"{KEY_PREFIX}_{prefix}_{secret}"


def _key_manager(actor) -> None:
    # Issuing a system credential that moves collateral records is a credit manager's decision.
    ensure_staff_permission(actor=actor, perm=Perm.POLICY_APPROVE)


@transaction.atomic
def machine_key_create(*, actor, name: str) -> tuple[MachineKey, str]:
    """A new import key; returns (key, the token shown once)."""
    _key_manager(actor)
    name = (name or "").strip()[:100]
    if not name:
        raise PortalError("validation_error", _("Name the system the key is for."), {"name": [_("Required.")]})
    key, token = _new_key(name=name, actor=actor)
    audit_log(actor=actor, action="collateral.machine_key.created", obj=key, after={"name": key.name, "prefix": key.prefix, "scope": key.scope})
    return key, token


@transaction.atomic
def machine_key_rotate(*, actor, key_id: int) -> tuple[MachineKey, str]:
    """Replace a key with a new one (the old one stops working at once)."""
    _key_manager(actor)
    old = MachineKey.objects.select_for_update(no_key=True).filter(pk=key_id).first()
    if old is None:
        raise NotFoundError("not_found", _("No such key."))
    if old.revoked_at is not None:
        raise ConflictError("invalid_state", _("This key is revoked; create a new one."))
    old.revoked_at, old.revoked_by = timezone.now(), actor
    old.save(update_fields=["revoked_at", "revoked_by"])
    key, token = _new_key(name=old.name, actor=actor, replaces=old)
    audit_log(actor=actor, action="collateral.machine_key.rotated", obj=key, before={"prefix": old.prefix}, after={"prefix": key.prefix, "name": key.name})
    return key, token


@transaction.atomic
def machine_key_revoke(*, actor, key_id: int, reason: str = "") -> MachineKey:
    _key_manager(actor)
    key = MachineKey.objects.select_for_update(no_key=True).filter(pk=key_id).first()
    if key is None:
        raise NotFoundError("not_found", _("No such key."))
    if key.revoked_at is not None:
        raise ConflictError("invalid_state", _("This key is already revoked."))
    key.revoked_at, key.revoked_by = timezone.now(), actor
    key.save(update_fields=["revoked_at", "revoked_by"])
    audit_log(actor=actor, action="collateral.machine_key.revoked", obj=key, before={"active": True}, after={"active": False, "reason": reason})
    return key


def machine_key_authenticate(token: str) -> MachineKey | None:
    """The active key a presented token belongs to (constant-time comparison), or None."""
    parts = (token or "").strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    key = MachineKey.objects.filter(prefix=parts[1], revoked_at__isnull=True).first()
    if key is None or not secrets.compare_digest(key.secret_sha256, _secret_hash(parts[2])):
        return None
    MachineKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    return key


# --- The marginable list -------------------------------------------------------------------------------------


def _ratio(value, label: str) -> Decimal:
    try:
        ratio = Decimal(str(value).strip())
    except (InvalidOperation, AttributeError):
        raise PortalError("validation_error", _("%(label)s must be a number between 0 and 1.") % {"label": label}, {label: [_("0 to 1.")]}) from None
    if not ratio.is_finite() or not (0 <= ratio <= 1):
        raise PortalError("validation_error", _("%(label)s must be a number between 0 and 1.") % {"label": label}, {label: [_("0 to 1.")]})
    return ratio.quantize(Decimal("0.0001"))


def _amount(value, label: str, *, minimum: Decimal, maximum: Decimal = Decimal("1e15"), whole: bool = False) -> Decimal:
    try:
        amount = Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, AttributeError):
        amount = Decimal("NaN")
    if not amount.is_finite() or not (minimum <= amount <= maximum) or (whole and amount != amount.to_integral_value()):
        raise PortalError("validation_error", _("%(label)s must be a number from %(min)s to %(max)s.") % {
            "label": label, "min": f"{minimum.normalize():,f}", "max": f"{maximum.normalize():,f}"}, {label: [_("Out of range.")]})
    return amount.quantize(Decimal("1") if whole else Decimal("0.01"))


def marginable_list_create(*, policy, data: dict | None, current=None) -> MarginableList:
    """The marginable list of a proposed policy version: the given numbers and entries, or a copy of the
    version in force where the proposal leaves them out. VA entries below 60% are refused (26EC5)."""
    from .models import VA_HAIRCUT_FLOOR, MarginableEntry, MarginableList

    data = data or {}
    base = MarginableList.objects.filter(policy=current).first() if current else None
    numbers = {}
    for name in MarginableList.NUMBERS:
        raw = data.get(name)
        if raw in (None, ""):
            numbers[name] = getattr(base, name) if base else MarginableList._meta.get_field(name).default
        else:
            numbers[name] = _ratio(raw, name)
    for name in MarginableList.AMOUNTS:
        raw = data.get(name)
        if raw in (None, ""):
            numbers[name] = getattr(base, name) if base else MarginableList._meta.get_field(name).default
        else:
            numbers[name] = _amount(raw, name, minimum=Decimal("0.01") if name == "limit_rounding_unit" else Decimal("0"))
    for name in MarginableList.DAYS:
        raw = data.get(name)
        if raw in (None, ""):
            numbers[name] = getattr(base, name) if base else MarginableList._meta.get_field(name).default
        else:
            numbers[name] = int(_amount(raw, name, minimum=Decimal("1"), maximum=Decimal("14"), whole=True))
    entries_in = data.get("entries")
    if entries_in is None:
        entries = dict(MarginableEntry.objects.filter(marginable_list=base).values_list("instrument_id", "haircut")) if base else {}
    else:
        if not isinstance(entries_in, dict):
            raise PortalError("validation_error", _("entries must map instrument codes to haircuts."), {"entries": [_("An object.")]})
        instruments = {i.code: i for i in Instrument.objects.filter(code__in=[normalise_code(c) for c in entries_in])}
        entries = {}
        for raw_code, raw_cut in entries_in.items():
            code = normalise_code(raw_code)
            instrument = instruments.get(code)
            if instrument is None:
                raise PortalError("validation_error", _("Unknown instrument %(code)s on the marginable list.") % {"code": code}, {"entries": [code]})
            cut = _ratio(raw_cut, f"haircut of {code}")
            if instrument.is_virtual_asset and cut < VA_HAIRCUT_FLOOR:
                raise PortalError("va_haircut_below_floor", _("The haircut on %(code)s must be at least 60%% (SFC circular 26EC5).") % {"code": code}, {"entries": [code]})
            entries[instrument.pk] = cut
    listed = MarginableList.objects.create(policy=policy, **numbers)
    kinds = dict(Instrument.objects.filter(pk__in=list(entries)).values_list("pk", "kind"))
    MarginableEntry.objects.bulk_create([
        MarginableEntry(marginable_list=listed, instrument_id=iid, instrument_kind=kinds[iid], haircut=cut) for iid, cut in sorted(entries.items())
    ])
    return listed


def marginable_snapshot(listed) -> dict:
    """For the policy's audit row: the list's numbers and entries by code."""
    from .models import MarginableEntry

    entries = {code: str(cut) for code, cut in MarginableEntry.objects.filter(marginable_list=listed).values_list("instrument__code", "haircut")}
    names = (*listed.NUMBERS, *listed.AMOUNTS, *listed.DAYS)
    return {name: str(getattr(listed, name)) for name in names} | {"entries": entries}
