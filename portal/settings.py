"""Settings for the VA Margin Portal.

One module, read from the environment. Every value that can be wrong fails loudly
with ImproperlyConfigured instead of silently falling back, so a misconfigured
production process never starts.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
# Runtime state of the embedded (demo) set-up: SQLite file, broker folders,
# uploaded evidence. Never served over HTTP.
DATA_DIR = Path(os.environ.get("PORTAL_DATA_DIR", BASE_DIR / ".data"))


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def envint(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def envlist(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = envbool("DEBUG", True)
# Demo data (printed TOTP secrets, demo price feed) only exists where this is on.
DEMO = envbool("PORTAL_DEMO", DEBUG)

_INSECURE_KEY = "insecure-development-key-do-not-use-in-production-0123456789abcdef"
SECRET_KEY = os.environ.get("SECRET_KEY", _INSECURE_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
if not DEBUG and SECRET_KEY == _INSECURE_KEY:
    raise ImproperlyConfigured("SECRET_KEY is the development key; set a real one")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "axes",
    "django_celery_beat",
    "portal",
    "onboarding",
    "disclosures",
    "lending",
    "lending.risk",
    "lending.collateral",
    "lending.reporting",
    "lending.servicing",
    "lending.recovery",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "portal.middleware.InputHygieneMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "portal.middleware.RequestContextMiddleware",
    "portal.middleware.UserLanguageMiddleware",
    "portal.middleware.StaffMFAMiddleware",
    # Axes must be last: it answers locked-out requests before any view runs.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "portal" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
                "django.template.context_processors.csp",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
DATA_DIR.mkdir(parents=True, exist_ok=True)
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'portal.sqlite3'}"
try:
    # Persistent connections in production (gunicorn's workers keep theirs). Under DEBUG none by default:
    # the development server runs each request in a thread of its own, and a thread's connection stays
    # open after it (a burst of requests then runs PostgreSQL out of connections).
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", 0 if DEBUG else 60))}
except Exception as exc:  # dj_database_url raises plain ValueError/KeyError
    raise ImproperlyConfigured(f"DATABASE_URL is not a usable database URL: {exc}") from exc
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # The embedded set-up runs a web process and a worker on one file:
        # WAL lets readers proceed during a write, IMMEDIATE avoids
        # lock-upgrade deadlocks, and the timeout waits out the other writer.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and not envbool("DB_JIT", False):
    # PostgreSQL compiles (JIT) every plan whose estimated cost passes jit_above_cost, which a large book's plans
    # do whatever rows they really touch: at 1,000,000 facilities the single-security tick spent 43 of its 56 ms
    # compiling. The portal's statements are pages, services and the engine's ticks, none long enough to earn it
    # back, so its connections run without it (DB_JIT=1 turns it back on).
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Authentication -------------------------------------------------------
AUTH_USER_MODEL = "portal.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "account_login"

ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = os.environ.get("ACCOUNT_EMAIL_VERIFICATION", "mandatory")
ACCOUNT_ADAPTER = "portal.adapters.PortalAccountAdapter"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[VA Margin Portal] "
# Axes does the lock-out; allauth's own login rate limit would double-count.
ACCOUNT_RATE_LIMITS = {"login_failed": False}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "VA Margin Portal"

AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = 0.5  # hours
# Per account always; per client address only where the address is the client's own (portal.context).
AXES_LOCKOUT_PARAMETERS = "portal.context.axes_lockout_parameters"
AXES_CLIENT_IP_CALLABLE = "portal.context.axes_client_ip"
AXES_USERNAME_FORM_FIELD = "login"
AXES_USERNAME_CALLABLE = "portal.adapters.axes_username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "portal/locked_out.html"
AXES_VERBOSE = False

# --- i18n -----------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hant", _("Traditional Chinese"))]
LOCALE_PATHS = [BASE_DIR / "portal" / "locale"]
FORMAT_MODULE_PATH = ["portal.formats"]  # zh_Hant: ISO date inputs, HK$8,000,000
TIME_ZONE = "Asia/Hong_Kong"
USE_I18N = True
USE_TZ = True

# --- Static and uploaded files --------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", DATA_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request otherwise
STORAGES = {
    # Evidence files are private: no MEDIA_URL is routed, they are served only
    # through permission-checked views.
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": os.environ.get("PRIVATE_MEDIA_ROOT", str(DATA_DIR / "private")), "base_url": None},
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage",
    },
}
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 11 * 1024 * 1024

# --- Email ------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "VA Margin Portal <no-reply@portal.invalid>")
# Shown with every repayment notice ({reference} is the request's reference).
SERVICING_PAYMENT_INSTRUCTIONS = os.environ.get(
    "SERVICING_PAYMENT_INSTRUCTIONS",
    "Pay in HKD by FPS or bank transfer to the firm's segregated client account (account name and number as in your "
    "client agreement), quoting {reference}. Payments from third parties are not accepted.",
)
SERVICING_PAYMENT_INSTRUCTIONS_ZH_HANT = os.environ.get(
    "SERVICING_PAYMENT_INSTRUCTIONS_ZH_HANT",
    "請以港元經轉數快或銀行轉帳存入本公司的客戶獨立帳戶（帳戶名稱及號碼載於您的客戶協議），並註明 {reference}。"
    "本公司不接受第三方付款。",
)

# The margin desk's phone, shown with the account officer on every margin call ("" shows none).
MARGIN_DESK_PHONE = os.environ.get("MARGIN_DESK_PHONE", "+852 3000 0000" if DEMO else "")

# --- Security ---------------------------------------------------------------
SECURE = envbool("PORTAL_SECURE", not DEBUG)
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE and envbool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000 if SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
BEHIND_PROXY = envbool("BEHIND_TLS_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
# The proxies (addresses or networks, e.g. 10.0.0.5,10.1.0.0/16) whose X-Forwarded-For hop is
# believed: the client's address for the audit trail and the lock-out is the one they saw.
TRUSTED_PROXIES = envlist("TRUSTED_PROXIES", [])
try:
    import ipaddress as _ipaddress

    for _proxy in TRUSTED_PROXIES:
        _ipaddress.ip_network(_proxy, strict=False)
except ValueError as exc:
    raise ImproperlyConfigured(f"TRUSTED_PROXIES must be IP addresses or networks: {exc}") from exc
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 8 * 3600)
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every page: scripts only from the portal's own static files or
# carrying this response's nonce (no inline handlers, no eval), <style> blocks likewise;
# style attributes stay allowed (bar widths and SVG geometry on the risk board), since an
# attribute can restyle its own element but never read or send the page. Served files carry
# their own "sandbox" policy (portal.files); the Redoc page widens styles for itself (portal.urls).
from django.utils.csp import CSP  # noqa: E402

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "style-src-elem": [CSP.SELF, CSP.NONCE],
    "style-src-attr": [CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],  # allauth's TOTP QR code is a data: image
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.SELF],  # evidence PDFs shown inline (each served sandboxed)
    "frame-src": [CSP.SELF],
    "worker-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# --- Cache ------------------------------------------------------------------
REDIS_CACHE_URL = os.environ.get("REDIS_CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_CACHE_URL}
        if REDIS_CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Celery -----------------------------------------------------------------
# Absent CELERY_BROKER_URL the embedded default is Kombu's filesystem transport:
# `make demo` runs one worker with embedded beat beside the web process, so
# tasks and periodic jobs work with no server to install.
# "localhost" only keeps Kombu from warning that no host was given; the transport ignores it.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "filesystem://localhost/"
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = DATA_DIR / "broker"
    for _sub in ("processed", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_queue_dir / "processed"),
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SOFT_TIME_LIMIT = envint("CELERY_TASK_SOFT_TIME_LIMIT", 60)
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", 90)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
# Beat keeps its schedule and last runs in the database (django-celery-beat), synced
# from the jobs the apps declare; see portal.scheduling.
CELERY_BEAT_SCHEDULER = "portal.scheduling:DatabaseScheduler"

# --- REST framework -----------------------------------------------------------
REST_FRAMEWORK = {
    # The token class first: its WWW-Authenticate header makes an anonymous request a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.authentication.ClientTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "portal.api_base.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "portal.schema.PortalAutoSchema",
    "EXCEPTION_HANDLER": "portal.api_base.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"auth": os.environ.get("AUTH_THROTTLE_RATE", "10/min")},
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "VA Margin Portal API",
    "DESCRIPTION": "Client and staff API for virtual-asset margin financing.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Record ids in paths (portal.converters): integers a database key can hold.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}},
    # One schema name per choice set, so clients see e.g. ApplicationStateEnum rather than State2fcEnum.
    "ENUM_NAME_OVERRIDES": {
        "LanguageEnum": "portal.models.Language",
        "ProductEnum": "portal.products.Product",
        "PIStateEnum": "onboarding.models.PIState",
        "SuitabilityStateEnum": "onboarding.models.SuitabilityState",
        "PerpetualsStateEnum": "onboarding.models.PerpetualsState",
        "KnowledgeBasisEnum": "onboarding.models.KnowledgeBasis",
        "EvidenceKindEnum": "onboarding.models.EvidenceKind",
        "VersionStatusEnum": "disclosures.models.VersionStatus",
        "WatchListCategoryEnum": "lending.models.WatchListCategory",
        "PICategoryEnum": "onboarding.models.PICategory",
        "ApplicationStateEnum": "lending.models.AppState",
        "FacilityStateEnum": "lending.models.FacilityState",
        "CollateralKindEnum": "lending.models.CollateralKind",
        "TransactionKindEnum": "lending.models.TxnKind",
        "ServicingRequestKindEnum": "lending.servicing.models.RequestKind",
        "ServicingRequestStateEnum": "lending.servicing.models.RequestState",
        "ServicingRequestOriginEnum": "lending.servicing.models.RequestOrigin",
        "MarginCallStateEnum": "lending.risk.models.CallState",
        "MarginCallResolutionEnum": "lending.risk.models.Resolution",
        "PriceAlarmKindEnum": "lending.risk.models.AlarmKind",
        "PriceSourceKindEnum": "lending.risk.models.SourceKind",
        "DeclineReasonEnum": "lending.models.DeclineReason",
        "PriceOverrideStatusEnum": "lending.risk.models.OverrideStatus",
        "LiquidationPlanStateEnum": "lending.recovery.models.PlanState",
        "LiquidationLineStatusEnum": "lending.recovery.models.LineStatus",
        "ExecutionStatusEnum": "lending.recovery.models.ExecutionStatus",
        "DebtStateEnum": "lending.recovery.models.DebtState",
        "PolicyStatusEnum": "lending.models.PolicyStatus",
        "SmfPackKindEnum": "lending.reporting.models.SmfPack.Kind",
        "ComplaintStateEnum": "lending.reporting.models.ComplaintState",
        "ComplaintChannelEnum": "lending.reporting.models.ComplaintChannel",
        "ComplaintOutcomeEnum": "lending.reporting.models.ComplaintOutcome",
        "DeviationStateEnum": "lending.reporting.models.DeviationState",
        "GroupMembershipStateEnum": "lending.reporting.models.MembershipState",
        "RelatedGroupBasisEnum": "lending.reporting.models.GroupBasis",
        "RecordRequestBasisEnum": "lending.reporting.models.RecordRequest.Basis",
        "PIBasisEnum": "onboarding.models.PIBasis",
    },
}

# --- Portal -------------------------------------------------------------------
DEFAULT_OFFICER_AUTHORITY_LIMIT = Decimal(os.environ.get("DEFAULT_OFFICER_AUTHORITY_LIMIT", "5000000.00"))
# Tests that need PostgreSQL, Redis or Chromium skip when absent, unless this is
# on: CI sets it so a missing service is a failure, never a silent skip.
REQUIRE_SERVICES = envbool("PORTAL_REQUIRE_SERVICES", False)
HEALTHZ_BROKER_TIMEOUT = 2.0

# One JSON object per line in production (a log shipper reads them), plain lines in development.
LOG_FORMAT = os.environ.get("LOG_FORMAT") or ("text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, got {LOG_FORMAT!r}")
from portal.logs import logging_config  # noqa: E402

LOGGING = logging_config(fmt=LOG_FORMAT, level=os.environ.get("LOG_LEVEL", "INFO"))
PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL", "http://127.0.0.1:8000")

# Notifications through the broker's SMS/push gateway: a signed webhook. The first secret signs;
# listing the previous one after it keeps the gateway verifying during a rotation
# (NOTIFICATION_WEBHOOK_SECRETS="new,old"), then drop the old one.
# The demo serves a stand-in gateway itself (portal.notification_demo), so its deliveries really go over HTTP.
NOTIFICATION_WEBHOOK_URL = os.environ.get("NOTIFICATION_WEBHOOK_URL", f"{PORTAL_BASE_URL.rstrip('/')}/demo/gateway/" if DEMO else "")
NOTIFICATION_WEBHOOK_SECRETS = envlist("NOTIFICATION_WEBHOOK_SECRETS", ["insecure-development-webhook-secret"] if DEBUG else [])
NOTIFICATION_WEBHOOK_TIMEOUT = float(envint("NOTIFICATION_WEBHOOK_TIMEOUT", 10))
if not DEBUG and "insecure-development-webhook-secret" in NOTIFICATION_WEBHOOK_SECRETS:
    raise ImproperlyConfigured("NOTIFICATION_WEBHOOK_SECRETS holds the development secret; set a real one")
