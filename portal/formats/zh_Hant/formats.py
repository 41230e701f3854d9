"""Traditional Chinese formats as a Hong Kong broker uses them.

Django's zh_Hant formats put ``%Y/%m/%d`` first among the date input formats, which makes an
``<input type="date">`` (that only accepts ISO dates) render empty, so saving a form in Chinese
would silently clear a date. Hong Kong also writes amounts with comma thousands separators
(HK$8,000,000), which Django's zh_Hant formats leave out.
"""

from django.conf.locale.zh_Hant.formats import *  # noqa: F403
from django.conf.locale.zh_Hant.formats import DATE_INPUT_FORMATS as _DJANGO_DATE_INPUT_FORMATS

DATE_INPUT_FORMATS = ["%Y-%m-%d", *[f for f in _DJANGO_DATE_INPUT_FORMATS if f != "%Y-%m-%d"]]
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3

# One date format on every page, the ISO one the explicit ``|date:"Y-m-d"`` filters already use:
# Django's own zh_Hant default (2026年12月1日) would sit beside 2026-12-01 on the same page.
DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i"
