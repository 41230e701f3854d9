from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RiskConfig(AppConfig):
    """The risk engine: price governance, revaluation, margin calls, stress tests, risk board.

    A nested app of ``lending`` with its own tables, so it can evolve (and migrate) on its own.
    """

    name = "lending.risk"
    label = "risk"
    verbose_name = _("Risk engine")
    default_auto_field = "django.db.models.BigAutoField"
