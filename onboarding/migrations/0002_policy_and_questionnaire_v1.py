"""Load onboarding policy version 1 and suitability questionnaire version 1 as data."""

from decimal import Decimal

from django.db import migrations
from django.utils import timezone

POLICY_V1 = {
    "pi_portfolio_threshold": Decimal("8000000.00"),
    "pi_total_assets_threshold": Decimal("40000000.00"),
    "evidence_window_months": 12,
    "audited_accounts_window_months": 16,
    "pi_validity_months": 12,
    "suitability_validity_months": 12,
    "reminder_days_before_expiry": 30,
    "derivative_min_transactions": 5,
    "va_margin_min_risk_profile": 4,
    "va_exposure_limit_pct_growth": Decimal("20.00"),
    "va_exposure_limit_pct_aggressive": Decimal("30.00"),
    "training_pass_mark_pct": 80,
}


def load(apps, schema_editor):
    from onboarding.questionnaires.v1 import QUESTIONNAIRE_V1

    OnboardingPolicy = apps.get_model("onboarding", "OnboardingPolicy")
    Questionnaire = apps.get_model("onboarding", "Questionnaire")
    OnboardingPolicy.objects.get_or_create(version=1, defaults={**POLICY_V1, "note": "Statutory floors; firm policy at launch."})
    definition = {k: v for k, v in QUESTIONNAIRE_V1.items() if k != "title"}
    Questionnaire.objects.get_or_create(
        version=1, defaults={"title": QUESTIONNAIRE_V1["title"], "definition": definition, "published_at": timezone.now()}
    )


class Migration(migrations.Migration):
    dependencies = [("onboarding", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
