# Two commands on a fresh clone: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Django 6 needs Python 3.12+: take the first interpreter on this machine that is.
PYTHON ?= $(shell for c in python3.13 python3.12 $$HOME/.pyenv/versions/3.13*/bin/python3 $$HOME/.pyenv/versions/3.12*/bin/python3 /usr/local/bin/python3.1[23] python3; do \
	if command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then echo $$c; break; fi; done)

.PHONY: install system-deps demo test lint check messages screenshots clean

# PDFs (statements, the SMF pack) are rendered by WeasyPrint, which needs pango, and Traditional
# Chinese needs the Noto CJK fonts. On Debian/Ubuntu as root they are installed here; elsewhere
# the message says what to install.
SYSTEM_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-noto-cjk
system-deps:
	@if command -v dpkg >/dev/null 2>&1; then \
	  missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      echo "Installing system packages for PDF documents: $$missing"; \
	      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	    else \
	      echo "PDF documents need these system packages: $$missing (sudo apt-get install $$missing)"; exit 1; \
	    fi; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.12 or newer is required (Django 6)."; exit 1; }
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,prod]'
	touch $@

install: $(VENV)/.installed

# Embedded set-up: SQLite file and Kombu's filesystem broker under .data/, one
# Celery worker with embedded beat (django-celery-beat's database scheduler, so the
# schedule lives in the same SQLite file) beside the development server.
# The worker builds the links in emails and gateway messages from PORTAL_BASE_URL: both processes
# get the address the web server really listens on (`make demo DEMO_PORT=8101`).
DEMO_PORT ?= 8000
demo: export PORTAL_BASE_URL ?= http://127.0.0.1:$(DEMO_PORT)
demo: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo "Starting the Celery worker (with beat) and the web server on $(PORTAL_BASE_URL) …"
	@trap 'kill 0' EXIT INT TERM; \
	$(VENV)/bin/celery -A portal worker --beat --scheduler portal.scheduling:DatabaseScheduler --pool=solo --loglevel=INFO --logfile=.data/celery.log & \
	$(PY) manage.py runserver 127.0.0.1:$(DEMO_PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(PY) manage.py makemigrations --check --dry-run

# Screenshots of every client and staff page (desktop and 390 px, English and Traditional Chinese),
# walked in Chromium over the demo data, then of every step of each role's journey (journey-<role>-…),
# into test-artifacts/screenshots/ (not committed).
screenshots: install
	PORTAL_SCREENSHOTS=1 $(PY) -m pytest tests/browser/test_every_page.py -k screenshots -q -p no:randomly
	PORTAL_SCREENSHOTS=1 $(PY) -m pytest tests/browser/test_journeys.py -q -p no:randomly

# Translations: each app keeps its own catalogue (nested apps are left to their own); run after
# changing user-facing strings, fill the new msgstr entries, then run it again to compile.
LOCALE_APPS := portal onboarding disclosures lending lending/collateral lending/risk lending/servicing lending/reporting lending/recovery
messages: install
	@for app in $(LOCALE_APPS); do \
	  ignores=$$(for other in $(LOCALE_APPS); do case $$other in $$app/*) echo "--ignore=$${other#$$app/}/*";; esac; done); \
	  (cd $$app && $(CURDIR)/$(PY) $(CURDIR)/manage.py makemessages -l zh_Hant --no-obsolete --no-wrap --no-location $$ignores -v0) || exit 1; \
	done
	$(PY) manage.py compilemessages -v0 --ignore=.venv

clean:
	rm -rf $(VENV) .data
