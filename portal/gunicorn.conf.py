"""gunicorn settings for the portal's web process: ``gunicorn -c portal/gunicorn.conf.py portal.wsgi``.

Everything is read from the environment, with defaults for one machine behind a TLS proxy.
"""

import os

bind = os.environ.get("BIND", "0.0.0.0:" + os.environ.get("PORT", "8000"))
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = int(os.environ.get("WEB_THREADS", "1"))
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
graceful_timeout = 30
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "2000"))
max_requests_jitter = 200
accesslog = "-"
errorlog = "-"
# The proxy in front terminates TLS; X-Forwarded-* are believed only from TRUSTED_PROXIES (portal.context).
forwarded_allow_ips = os.environ.get("TRUSTED_PROXIES", "127.0.0.1")


def _logconfig():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from portal.logs import logging_config

    debug = os.environ.get("DEBUG", "1").lower() in {"1", "true", "yes", "on"}
    return logging_config(fmt=os.environ.get("LOG_FORMAT") or ("text" if debug else "json"), level=os.environ.get("LOG_LEVEL", "INFO"))


logconfig_dict = _logconfig()
