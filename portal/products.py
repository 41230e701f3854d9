"""The products a client can be made eligible for: shared vocabulary of every app."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Product(models.TextChoices):
    VA_MARGIN = "va_margin", _("VA margin financing")
    PERPETUALS = "perpetuals", _("VA perpetual contracts access")
    # Being treated as a professional investor: its disclosure must be read before attesting.
    PROFESSIONAL_INVESTOR = "professional_investor", _("Treatment as a professional investor")
