"""English formats: dates as the rest of the portal writes them (ISO 8601, 2026-12-01), so a page
never shows "Dec. 1, 2026" beside 2026-12-01; times on the 24-hour clock, in Hong Kong time
(TIME_ZONE)."""

from django.conf.locale.en.formats import *  # noqa: F403

DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i"
MONTH_DAY_FORMAT = "j F"
