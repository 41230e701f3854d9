"""The regulated numbers of onboarding: the statutory floors, and the firm's policy on top of them.

The floors come from the Securities and Futures (Professional Investor) Rules (Cap. 571D), the
SFC Code of Conduct 5.1A and the SFC/HKMA joint circular on VA-related activities. They are
constants here and nowhere else; the firm's own numbers live in ``OnboardingPolicy`` rows
(versioned, edited in the admin) and are validated against these floors. Every decision stores
the policy version and the numbers it used.
"""

from __future__ import annotations

from decimal import Decimal

# Cap. 571D: an individual's (or a corporation's/partnership's) portfolio.
PI_PORTFOLIO_FLOOR = Decimal("8000000.00")
# Cap. 571D: a corporation's/partnership's total assets; a trust corporation's assets entrusted.
PI_TOTAL_ASSETS_FLOOR = Decimal("40000000.00")
# Evidence must be issued within this many months of the relevant date.
PI_EVIDENCE_WINDOW_MONTHS_MAX = 12
# A corporation's audited financial statements: prepared within this many months.
PI_AUDITED_ACCOUNTS_WINDOW_MONTHS_MAX = 16
# Firm policy must reconfirm PI status at least annually, and suitability at least annually.
PI_VALIDITY_MONTHS_MAX = 12
SUITABILITY_VALIDITY_MONTHS_MAX = 12
# Derivative knowledge by trading: at least this many transactions in the look-back period.
DERIVATIVE_TRANSACTIONS_FLOOR = 5
DERIVATIVE_LOOKBACK_YEARS = 3

# Evidence uploads.
EVIDENCE_MAX_BYTES = 10 * 1024 * 1024
EVIDENCE_CONTENT_TYPES = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}

# The firm's defaults, loaded as policy version 1 by migration 0002.
DEFAULTS = {
    "pi_portfolio_threshold": PI_PORTFOLIO_FLOOR,
    "pi_total_assets_threshold": PI_TOTAL_ASSETS_FLOOR,
    "evidence_window_months": PI_EVIDENCE_WINDOW_MONTHS_MAX,
    "audited_accounts_window_months": PI_AUDITED_ACCOUNTS_WINDOW_MONTHS_MAX,
    "pi_validity_months": PI_VALIDITY_MONTHS_MAX,
    "suitability_validity_months": SUITABILITY_VALIDITY_MONTHS_MAX,
    "reminder_days_before_expiry": 30,
    "derivative_min_transactions": DERIVATIVE_TRANSACTIONS_FLOOR,
    # Firm policy: VA margin financing only for "growth" (4) or "aggressive" (5) risk profiles,
    # because VA prices can fall by more than half in weeks and financing magnifies that loss.
    "va_margin_min_risk_profile": 4,
    # Firm policy (not statutory): VA exposure cap as % of net worth, by risk profile.
    "va_exposure_limit_pct_growth": Decimal("20.00"),
    "va_exposure_limit_pct_aggressive": Decimal("30.00"),
    "training_pass_mark_pct": 80,
    # Firm service level told to a client who submits a PI attestation.
    "pi_review_business_days": 2,
}


def current_policy():
    """The policy in force: the highest version. Migration 0002 guarantees one exists."""
    from .models import OnboardingPolicy

    policy = OnboardingPolicy.objects.order_by("-version").first()
    if policy is None:  # only in a database built without migrations
        policy = OnboardingPolicy.objects.create(version=1, **DEFAULTS)
    return policy
