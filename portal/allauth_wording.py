"""django-allauth strings the portal translates itself.

allauth's own zh_Hant catalogue leaves the English word "authenticator" inside three of them. The
portal's catalogue (LOCALE_PATHS) wins over an app's, and listing the strings here keeps them in it
(``make messages`` drops entries no source file mentions).
"""

from django.utils.translation import gettext_noop

STRINGS = [
    gettext_noop("An authenticator app is not active."),
    gettext_noop("You can store this secret and use it to reinstall your authenticator app at a later time."),
    gettext_noop("You are about to deactivate authenticator app based authentication. Are you sure?"),
]
