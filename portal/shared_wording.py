"""Words the portal translates itself where another catalogue translates them otherwise, or not well.

Django merges every catalogue into one, the portal's (LOCALE_PATHS) first, then each installed app's in order,
third-party apps and Django's own among them. Where one of those gives a word another meaning ("Note" as
注意, "attention"; "Created" as 建立者, "creator"; "client" as 客戶端, a program), the portal's catalogue gives the
wording its pages mean. Listing the words here keeps them in it (``make messages`` drops entries no source file
mentions); ``tests/portal/test_catalogues.py`` checks that every app's translation is the one shown.

django-allauth's own zh_Hant catalogue leaves the English word "authenticator" inside three of its sentences;
the portal's catalogue gives them whole.
"""

from django.utils.translation import gettext_noop

STRINGS = [
    gettext_noop("Note"),
    gettext_noop("Created"),
    gettext_noop("client"),
    gettext_noop("History"),
    gettext_noop("Verified"),
    gettext_noop("Summary"),
    gettext_noop("Home"),
    # django-allauth
    gettext_noop("An authenticator app is not active."),
    gettext_noop("You can store this secret and use it to reinstall your authenticator app at a later time."),
    gettext_noop("You are about to deactivate authenticator app based authentication. Are you sure?"),
]
