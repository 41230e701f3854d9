"""The collateral book's records: instruments, custody balances and their ledger, back-office imports,
reconciliation breaks and the back office's machine credential.

* ``Instrument`` — the master: HKEX securities (5-digit stock code) plus BTC and ETH.
* ``CustodyBalance`` — per client and instrument: ``held`` (what the margin account or the VA custodian
  holds for the client, as the back office reports it) and ``pledged`` (what backs the client's
  facilities, summed over all of them). ``free = held − pledged``. The database refuses
  ``pledged > held`` (a CHECK on the row every pledge updates in one statement), so no two facilities
  can ever be backed by the same shares or coins, whatever the Python above it does.
* ``CustodyEntry`` — the immutable ledger the balance is the sum of (holding changes, pledges, releases).
* ``ImportBatch`` — one back-office batch (positions end of day / intraday, the VA custody statement,
  end-of-day prices), idempotent per batch id, with its line-by-line report.
* ``ReconciliationBreak`` — a difference operations must look at; one open break per key.
* ``MachineKey`` — the back office's API key: only its SHA-256 is stored; scoped to imports.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

QTY = {"max_digits": 24, "decimal_places": 8}
ZERO = Decimal("0")


def normalise_code(code) -> str:
    """HKEX codes are 5 digits ("700" → "00700"); BTC / ETH upper-case."""
    text = str(code or "").strip().upper()
    if text.isdigit() and len(text) <= 5:
        return text.zfill(5)
    return text


class InstrumentKind(models.TextChoices):
    SECURITY = "security", _("Listed security (HKEX)")
    VIRTUAL_ASSET = "virtual_asset", _("Virtual asset")


class Instrument(models.Model):
    """One instrument the firm can hold as collateral. Deactivated, never deleted."""

    code = models.CharField(_("code"), max_length=12, unique=True, help_text=_("HKEX stock code (5 digits, e.g. 00700), or BTC / ETH."))
    kind = models.CharField(_("kind"), max_length=16, choices=InstrumentKind.choices)
    name_en = models.CharField(_("name (English)"), max_length=200)
    name_zh = models.CharField(_("name (Chinese)"), max_length=200, blank=True)
    board_lot = models.PositiveIntegerField(_("board lot"), default=1)
    currency = models.CharField(_("currency"), max_length=3, default="HKD")
    issuer = models.CharField(_("issuer"), max_length=200, blank=True)
    sector = models.CharField(_("sector"), max_length=80, blank=True)
    # The firm's default marginable class (the policy maps classes to haircuts and may override per instrument).
    margin_class = models.CharField(_("margin class"), max_length=8, blank=True)
    suspended = models.BooleanField(_("trading suspended"), default=False)
    suspended_since = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    FIELDS = ("code", "kind", "name_en", "name_zh", "board_lot", "currency", "issuer", "sector", "margin_class", "suspended", "active")

    class Meta:
        ordering = ["kind", "code"]
        constraints = [
            models.CheckConstraint(condition=Q(board_lot__gte=1), name="instrument_board_lot_positive"),
            models.CheckConstraint(
                condition=Q(kind="security") | Q(code__in=["BTC", "ETH"]), name="instrument_va_is_btc_or_eth",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name_en}"

    @property
    def is_virtual_asset(self) -> bool:
        return self.kind == InstrumentKind.VIRTUAL_ASSET

    def name_for(self, language: str | None) -> str:
        return self.name_zh if (language or "").startswith("zh") and self.name_zh else self.name_en

    @property
    def shown_name(self) -> str:
        """Its name in the language of the page being rendered (``name_for``)."""
        from django.utils.translation import get_language

        return self.name_for(get_language())


# --- Custody ledger ----------------------------------------------------------------------------------


class CustodyBalance(models.Model):
    """Per client and instrument: held, pledged, free (= held − pledged). Changed only by ``services``
    with one conditional UPDATE per change; the CHECK constraints are the last line of defence."""

    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    held = models.DecimalField(_("held"), **QTY, default=ZERO)
    pledged = models.DecimalField(_("pledged"), **QTY, default=ZERO)
    updated_at = models.DateTimeField(default=timezone.now)
    # The as_of of the latest applied batch that reported this holding (a positions file, the custody statement):
    # a batch dated earlier than any of an account's holdings is out of date and refused for that account.
    reported_as_of = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["client", "instrument"]
        constraints = [
            models.UniqueConstraint(fields=["client", "instrument"], name="one_custody_balance_per_client_instrument"),
            models.CheckConstraint(condition=Q(held__gte=0), name="custody_held_not_negative"),
            models.CheckConstraint(condition=Q(pledged__gte=0), name="custody_pledged_not_negative"),
            # The rule the issue asks the database to keep: a pledge never exceeds what is held, across
            # every facility of the client (``pledged`` is their sum).
            models.CheckConstraint(condition=Q(pledged__lte=F("held")), name="custody_pledged_within_held"),
        ]
        indexes = [models.Index(fields=["instrument", "client"])]

    def __str__(self) -> str:
        return f"{self.client_id} {self.instrument_id}: held {self.held}, pledged {self.pledged}"

    @property
    def free(self) -> Decimal:
        return self.held - self.pledged


class EntryKind(models.TextChoices):
    HOLDING = "holding", _("Holding reported by the back office")
    PLEDGE = "pledge", _("Pledged to a facility")
    RELEASE = "release", _("Released from a facility")


class CustodyEntry(models.Model):
    """One movement of the custody ledger (append-only). ``held`` is the sum of holding deltas and
    ``pledged`` the sum of pledges less releases, per client and instrument."""

    balance = models.ForeignKey(CustodyBalance, on_delete=models.PROTECT, related_name="entries")
    client = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+", db_index=False)
    instrument_kind = models.CharField(max_length=16, choices=InstrumentKind.choices)
    kind = models.CharField(max_length=10, choices=EntryKind.choices)
    # Signed change of held (holding) or the quantity pledged / released (always positive).
    quantity = models.DecimalField(**QTY)
    held_after = models.DecimalField(**QTY)
    pledged_after = models.DecimalField(**QTY)
    facility = models.ForeignKey("lending.Facility", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    batch = models.ForeignKey("ImportBatch", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # Client assets pledged to the firm are never re-pledged (26EC5 for VA; the firm's rule for securities).
    repledge_allowed = models.BooleanField(default=False)
    reference = models.CharField(max_length=100, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor_label = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = _("custody entries")
        constraints = [
            models.CheckConstraint(
                condition=~Q(instrument_kind="virtual_asset") | Q(repledge_allowed=False), name="client_va_never_repledged",
            ),
            models.CheckConstraint(condition=Q(kind="holding") | Q(quantity__gt=0), name="custody_pledge_quantity_positive"),
        ]
        indexes = [models.Index(fields=["facility", "instrument"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.quantity} of {self.instrument_id} for {self.client_id}"


# --- Back-office imports --------------------------------------------------------------------------------


class ImportKind(models.TextChoices):
    POSITIONS_EOD = "positions_eod", _("Securities positions, end of day")
    POSITIONS_INTRADAY = "positions_intraday", _("Securities positions, intraday update")
    CUSTODY_STATEMENT = "custody_statement", _("VA custody statement")
    PRICES_EOD = "prices_eod", _("Securities prices, end of day")
    PRICES_INTRADAY = "prices_intraday", _("Securities prices, intraday (market-data gateway)")


class ImportStatus(models.TextChoices):
    APPLIED = "applied", _("Applied")
    REJECTED = "rejected", _("Rejected (nothing applied)")


def batch_error_text(error: dict) -> str:
    """A line error of a batch's report in the active language: its message (``text``) filled with its ``params``.
    An error stored before errors kept their message and parameters reads as stored (``message``)."""
    from django.utils.translation import gettext

    text = error.get("text")
    if not text:
        return error.get("message", "")
    params = error.get("params") or {}
    try:
        return gettext(text) % params if params else gettext(text)
    except (KeyError, TypeError, ValueError):
        return error.get("message", "")


class ImportBatch(models.Model):
    """One batch from the back office or the custody platform, and what became of it."""

    kind = models.CharField(max_length=20, choices=ImportKind.choices)
    batch_id = models.CharField(_("batch id"), max_length=80)
    content_sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=ImportStatus.choices)
    as_of = models.DateTimeField(null=True, blank=True)
    channel = models.CharField(max_length=10, default="api")  # "api", "upload", "command"
    line_count = models.PositiveIntegerField(default=0)
    applied_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)  # [{"line", "field", "code", "message"}]
    summary = models.JSONField(default=dict, blank=True)
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    machine_key = models.ForeignKey("MachineKey", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name_plural = _("import batches")
        constraints = [
            # Idempotent per batch id: a batch id is applied at most once (a rejected one may be sent again, fixed).
            models.UniqueConstraint(fields=["kind", "batch_id"], condition=Q(status="applied"), name="one_applied_batch_per_id"),
        ]
        indexes = [models.Index(fields=["kind", "batch_id"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.batch_id} ({self.status})"

    @property
    def problems(self) -> list[dict]:
        """The report's line errors, each ``message`` in the reader's language (``batch_error_text``)."""
        return [{"line": e.get("line"), "field": e.get("field", ""), "code": e.get("code", ""), "message": batch_error_text(e)} for e in self.errors]


class BreakKind(models.TextChoices):
    POSITION_DIFFERENCE = "position_difference", _("End-of-day position differs from the portal's")
    ACCOUNT_MISSING = "account_missing", _("Account holding collateral missing from the end-of-day file")
    BELOW_PLEDGED = "below_pledged", _("Reported holding below the quantity pledged")
    VA_PLEDGE_DIFFERENCE = "va_pledge_difference", _("VA pledged in the portal differs from the custody statement")
    STATEMENT_MISSING = "statement_missing", _("No custody statement received")


# What a break says, by its message code: filled from ``message_params`` in the reader's language (``ReconciliationBreak.text``);
# ``message`` keeps the English sentence, the record the API and the audit trail show.
BREAK_TEXTS = {
    "position_difference": _("%(code)s account %(account)s: the portal held %(portal)s before the end-of-day file, which reports %(external)s; "
                             "the file's figure now applies."),
    "va_pledge_difference": _("%(code)s account %(account)s: the portal has %(portal)s pledged, the custody statement %(external)s."),
    "va_pledge_not_on_statement": _("%(code)s account %(account)s: the portal has %(portal)s pledged; the account is not on the custody statement."),
    # Raised before breaks named the account (kept so those read as they were raised).
    "va_pledge_unlisted": _("%(code)s: the portal has %(portal)s pledged for client #%(client)s, who is not on the custody statement."),
    "statement_missing_since": _("No custody statement has been applied since %(since)s HKT."),
    "statement_missing_ever": _("No custody statement has ever been applied, yet client VA is pledged."),
}


def break_message(code: str, params: dict) -> str:
    """A break's sentence in the active language (a code this module does not know: empty)."""
    text = BREAK_TEXTS.get(code)
    return str(text) % params if text is not None else ""


class ReconciliationBreak(models.Model):
    """A difference between the portal and the back office (or custodian) for operations to resolve."""

    kind = models.CharField(max_length=24, choices=BreakKind.choices)
    key = models.CharField(max_length=120)  # one open break per key
    client = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    instrument = models.ForeignKey(Instrument, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    portal_quantity = models.DecimalField(**QTY, null=True, blank=True)
    external_quantity = models.DecimalField(**QTY, null=True, blank=True)
    batch = models.ForeignKey(ImportBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="breaks")
    message = models.TextField()  # in English, as raised
    message_code = models.CharField(max_length=32, blank=True)  # BREAK_TEXTS; blank: a break raised before breaks had codes
    message_params = models.JSONField(default=dict, blank=True)
    raised_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["key"], condition=Q(resolved_at__isnull=True), name="one_open_break_per_key"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def text(self) -> str:
        """What the break says, in the reader's language (a break raised before codes: its English message)."""
        return break_message(self.message_code, self.message_params) or self.message


# --- Machine credential -----------------------------------------------------------------------------------


class KeyScope(models.TextChoices):
    IMPORTS = "imports", _("Back-office imports only")


class MachineKey(models.Model):
    """An API key for a system (the back office, the custody platform, a market-data gateway).

    The secret is shown once at creation; only its SHA-256 is kept. The key authenticates the import
    endpoints and nothing else (see ``auth.MachineKeyAuthentication``).
    """

    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_sha256 = models.CharField(max_length=64)
    scope = models.CharField(max_length=20, choices=KeyScope.choices, default=KeyScope.IMPORTS)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    replaces = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def label(self) -> str:
        """How the audit trail names this key."""
        return f"machine-key:{self.prefix} ({self.name})"


# --- The marginable list (versioned inside the collateral policy) --------------------------------------

VA_HAIRCUT_FLOOR = Decimal("0.60")  # SFC circular 26EC5 (also lending.models.VA_HAIRCUT_FLOOR)
RATIO = {"max_digits": 7, "decimal_places": 4}


class MarginableList(models.Model):
    """The collateral-book part of one collateral-policy version (created with the proposal, approved with it):
    the marginable list, the concentration limits, how recommended limits are rounded and how long a
    security's last price stays usable.

    A security's haircut: its entry's haircut if listed; else its margin class's haircut in the policy;
    not marginable (100%) when neither applies or the entry says so. A suspended security is valued at
    its last price with ``suspended_haircut`` (1.0000 = valued at zero).

    Concentration (SMF Guidelines, collateral concentration) is measured in lending value: one instrument's,
    issuer's or sector's securities lending value as a share of the client's total lending value (all their
    active facilities), and of the firm's whole active book. The firm-wide limits apply once the book's
    lending value reaches ``firm_concentration_min_book``: below that, the first facilities are always
    "concentrated" and the share says nothing.
    """

    policy = models.OneToOneField("lending.CollateralPolicy", on_delete=models.PROTECT, related_name="marginable")
    suspended_haircut = models.DecimalField(_("haircut on a suspended security"), **RATIO, default=Decimal("1"))
    instrument_concentration_max = models.DecimalField(_("largest share of a client's lending value from one instrument"), **RATIO, default=Decimal("0.50"))
    issuer_concentration_max = models.DecimalField(_("largest share of a client's lending value from one issuer"), **RATIO, default=Decimal("0.50"))
    firm_instrument_concentration_max = models.DecimalField(_("largest share of the firm's book from one instrument"), **RATIO, default=Decimal("0.25"))
    firm_issuer_concentration_max = models.DecimalField(_("largest share of the firm's book from one issuer"), **RATIO, default=Decimal("0.25"))
    sector_concentration_max = models.DecimalField(_("largest share of a client's lending value from one sector"), **RATIO, default=Decimal("0.75"))
    firm_sector_concentration_max = models.DecimalField(_("largest share of the firm's book from one sector"), **RATIO, default=Decimal("0.40"))
    firm_concentration_min_book = models.DecimalField(
        _("book lending value from which the firm-wide concentration limits apply (HKD)"), max_digits=18, decimal_places=2,
        default=Decimal("100000000"))
    limit_rounding_unit = models.DecimalField(
        _("recommended limits rounded down to a multiple of (HKD)"), max_digits=18, decimal_places=2, default=Decimal("10000"))
    securities_price_max_age_days = models.PositiveSmallIntegerField(
        _("a security's last price stays usable for (days; the exchange closes at weekends and holidays)"), default=4)

    NUMBERS = ("suspended_haircut", "instrument_concentration_max", "issuer_concentration_max", "sector_concentration_max",
               "firm_instrument_concentration_max", "firm_issuer_concentration_max", "firm_sector_concentration_max")
    AMOUNTS = ("firm_concentration_min_book", "limit_rounding_unit")
    DAYS = ("securities_price_max_age_days",)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(suspended_haircut__gte=0, suspended_haircut__lte=1), name="suspended_haircut_is_a_ratio"),
            models.CheckConstraint(condition=Q(limit_rounding_unit__gte=Decimal("0.01")), name="limit_rounding_unit_positive"),
            models.CheckConstraint(condition=Q(securities_price_max_age_days__gte=1, securities_price_max_age_days__lte=14),
                                   name="securities_price_age_1_to_14_days"),
        ]

    def __str__(self) -> str:
        return f"marginable list of policy {self.policy_id}"


class MarginableEntry(models.Model):
    """A per-instrument line of the marginable list: a haircut override, or not marginable."""

    marginable_list = models.ForeignKey(MarginableList, on_delete=models.PROTECT, related_name="entries")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    instrument_kind = models.CharField(max_length=16, choices=InstrumentKind.choices)
    haircut = models.DecimalField(**RATIO)  # 1.0000 = not marginable

    class Meta:
        ordering = ["marginable_list", "instrument"]
        constraints = [
            models.UniqueConstraint(fields=["marginable_list", "instrument"], name="one_entry_per_instrument_per_list"),
            models.CheckConstraint(condition=Q(haircut__gte=0, haircut__lte=1), name="marginable_haircut_is_a_ratio"),
            # 26EC5: VA collateral carries a haircut of at least 60%, whatever the list says.
            models.CheckConstraint(condition=~Q(instrument_kind="virtual_asset") | Q(haircut__gte=VA_HAIRCUT_FLOOR), name="marginable_va_at_least_60pct"),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id}: {self.haircut}"


class BookPrice(models.Model):
    """The price each instrument's positions are valued at in the per-facility sums of the book.

    Written only by the revaluation engine, in the transaction that moves the sums by the price
    delta (new reference − this price), so the sums always equal positions × these prices.
    """

    instrument = models.OneToOneField(Instrument, primary_key=True, on_delete=models.PROTECT, related_name="+")
    price = models.DecimalField(max_digits=20, decimal_places=4)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.instrument_id} @ {self.price}"
