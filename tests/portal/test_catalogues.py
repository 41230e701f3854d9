"""Every Traditional Chinese translation in the portal's catalogues is the one its readers see.

Django merges every catalogue into one (the project's locale first, then each installed app's in order,
third-party apps and Django's own included), so the same English in two places is shown with one translation:
whichever comes first. A translation an app's catalogue gives but nobody sees is wrong twice over: the page
shows another app's wording (a margin call "met" read as 已符合, "conforms", from onboarding's checklist; "Note"
read as 注意, "attention", from a third-party catalogue), and the catalogue misleads whoever reviews it. Words
that mean different things in different places carry a message context; the rest say the same everywhere.
"""

from __future__ import annotations

import gettext as stdlib_gettext
from pathlib import Path

from django.conf import settings
from django.utils import translation

ROOT = Path(settings.BASE_DIR)
APPS = ("portal", "onboarding", "disclosures", "lending")


def _catalogues() -> list[Path]:
    return sorted(p for app in APPS for p in (ROOT / app).rglob("locale/zh_Hant/LC_MESSAGES/django.mo"))


def test_every_translation_in_the_catalogues_is_the_one_shown():
    assert len(_catalogues()) >= 9
    hidden = []
    with translation.override("zh-hant"):
        for mo in _catalogues():
            with mo.open("rb") as handle:
                catalogue = stdlib_gettext.GNUTranslations(handle)._catalog
            for key, text in catalogue.items():
                if not key or isinstance(key, tuple):  # the header; plural forms
                    continue
                context, _, msgid = key.rpartition("\x04")
                shown = translation.pgettext(context, msgid) if context else translation.gettext(msgid)
                if shown != text:
                    hidden.append(f"{mo.parents[3].relative_to(ROOT)} {msgid!r}: {text}, but shown: {shown}")
    assert not hidden, "\n".join(hidden)


def test_words_with_two_meanings_read_as_each_place_means_them():
    with translation.override("zh-hant"):
        assert translation.pgettext("margin call", "Met") == "已履行"
        assert translation.gettext("Met") == "已符合"  # an onboarding requirement
        assert translation.gettext("Note") == "備註"
        assert translation.gettext("client") == "客戶"
        assert translation.pgettext("trading", "Suspend") == "停牌"
