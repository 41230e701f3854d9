"""Walking every page a user can reach, as the browser tests and ``make screenshots`` do.

A walk starts at the user's home page and follows every same-site link to a page (no downloads,
no API, no admin, no sign-out), visiting each URL pattern once: what is measured is the page's
layout and wording, and a second facility page would only repeat the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from django.urls import Resolver404, resolve

VENDOR = Path(__file__).resolve().parent / "vendor"
AXE_SOURCE = (VENDOR / "axe.min.js").read_text(encoding="utf-8")
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}

SKIP_PREFIXES = ("/api/", "/admin/", "/accounts/logout", "/language/", "/static/", "/media/", "/healthz")
DOWNLOAD = re.compile(r"(\.(pdf|csv|zip|json|xlsx)$)|/pdf/$|/export/")


@dataclass
class Visit:
    url: str
    route: str
    status: int
    # A document served sandboxed (a statement's HTML copy) runs no script, so axe cannot run in it.
    sandboxed: bool = False
    scroll_width: int = 0
    viewport: int = 0
    violations: list[str] = field(default_factory=list)
    english: list[str] = field(default_factory=list)
    # What the browser reported while the page loaded: script errors, console errors (a refused inline
    # style or script, a resource that failed to load).
    errors: list[str] = field(default_factory=list)


def route_of(path: str) -> str | None:
    try:
        match = resolve(path)
    except Resolver404:
        return None
    return match.view_name


def page_links(page) -> list[str]:
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    out = []
    for href in hrefs:
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or not parts.path.startswith("/"):
            continue
        if parts.path.startswith(SKIP_PREFIXES) or DOWNLOAD.search(parts.path):
            continue
        out.append(parts.path + (f"?{parts.query}" if parts.query and "page=" not in parts.query else ""))
    return out


def walk(page, start: str, *, seen_routes: set | None = None, limit: int = 80, visit=None) -> list[Visit]:
    """Visit ``start`` and every page linked from it (breadth first), each URL pattern once.

    ``visit(page, Visit)`` is called on every HTML page after it has loaded; ``seen_routes``
    shared between walks skips patterns another user's walk already covered."""
    seen_routes = set() if seen_routes is None else seen_routes
    queue, seen_urls, visits = [start], set(), []
    errors: list[str] = []

    def on_console(message):
        # A resource that failed is reported with its address by on_response.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(f"console: {message.text}")

    def on_response(response):
        if response.status >= 400:
            errors.append(f"{response.status} from {response.url}")

    def on_page_error(error):
        errors.append(f"script: {error}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    page.on("response", on_response)
    try:
        while queue and len(visits) < limit:
            url = queue.pop(0)
            if url in seen_urls:
                continue
            seen_urls.add(url)
            route = route_of(urlsplit(url).path)
            # The start page is always loaded for its links, even when another user's walk measured it.
            if route is None or (route in seen_routes and url != start):
                continue
            errors.clear()
            response = page.goto(url)
            if response is None or "text/html" not in (response.headers.get("content-type") or ""):
                continue
            page.wait_for_load_state("load")
            if route not in seen_routes:
                seen_routes.add(route)
                csp = response.headers.get("content-security-policy") or ""
                record = Visit(url=url, route=route, status=response.status, sandboxed="sandbox" in csp and "allow-scripts" not in csp)
                record.errors = list(errors)
                if visit is not None:
                    visit(page, record)
                visits.append(record)
            queue.extend(link for link in page_links(page) if link not in seen_urls)
    finally:
        page.remove_listener("console", on_console)
        page.remove_listener("pageerror", on_page_error)
        page.remove_listener("response", on_response)
    return visits


def measure_overflow(page, record: Visit) -> None:
    record.scroll_width = page.evaluate("document.documentElement.scrollWidth")
    record.viewport = page.evaluate("document.documentElement.clientWidth")


def overflowing(page) -> list[str]:
    """The outermost elements reaching past the viewport's right edge (for the failure message)."""
    return page.evaluate(
        """() => { const vw = document.documentElement.clientWidth, out = [];
        for (const el of document.querySelectorAll('body *')) {
          if (el.getBoundingClientRect().right <= vw + 1) continue;
          let p = el.parentElement, inner = false;
          while (p && p !== document.body) { if (p.getBoundingClientRect().right > vw + 1) { inner = true; break; } p = p.parentElement; }
          if (!inner) out.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : ''} (${Math.round(el.getBoundingClientRect().right)}px)`);
        } return out.slice(0, 5); }"""
    )


def axe_violations(page, record: Visit | None = None) -> list[str]:
    """Serious and critical axe-core violations on the page, one line each."""
    if record is not None and record.sandboxed:
        return []  # no script runs there: axe.run would wait forever for its first timer
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SOURCE + "\n;0")
    return page.evaluate(
        """async () => { const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
          .map(v => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`); }"""
    )


# Latin text a Chinese page may rightly show: codes and references (FAC-000005, BTC, HKID, SHA-256),
# e-mail addresses, links, amounts and units; everything else in Latin letters is English UI.
_ALLOWED_PATTERNS = [
    r"\S+@\S+",  # e-mail addresses
    r"https?://\S+",
    r"\b[A-Z][A-Z0-9]*(?:[-_/.][A-Z0-9]+)*\b",  # codes, tickers, references, acronyms
    r"\b[0-9A-Fa-f]{16,}\b",  # hashes
    r"\b\w*\d\w*\b",  # anything with a digit in it: references, hash fragments, sizes
    r"\bHK\$",
    r"\b(?:zh-hant|en)\b",  # language codes
    r"\b[a-z]+(?:-[a-z]+){2,}\b",  # document codes (va-margin-financing-risk)
    r"\bv\d+\b",  # document versions
    r"\b\d+(?:[.,:]\d+)*\s*(?:px|ms|s|x|bp)?\b",
]
_ALLOWED = re.compile("|".join(_ALLOWED_PATTERNS))
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*[a-z][A-Za-z'’-]*")


def english_left(text: str, allowed_phrases: list[str]) -> list[str]:
    """Runs of English words left in ``text`` once proper names and data are taken out."""
    for phrase in sorted(allowed_phrases, key=len, reverse=True):
        if phrase:
            text = text.replace(phrase, " ")
    found = []
    for line in text.splitlines():
        line = _ALLOWED.sub(" ", line)
        words = _WORD.findall(line)
        if words:
            found.append(" ".join(words))
    return found


def visible_text(page) -> str:
    """What a reader sees and hears: the text of the page plus labels that are not in it. Text an
    element declares to be in another language (``lang="en"``: the English text a client
    acknowledged, a "Read in English" link) is what it says it is, and is left out; so is what it
    declares not to be translated (``translate="no"``: a job's or an audit action's identifier)."""
    return page.evaluate(
        """() => { const other = [...document.body.querySelectorAll('[lang], [translate=no]')].filter(el => el.getAttribute('translate') === 'no' || !el.lang.toLowerCase().startsWith('zh'));
        const saved = other.map(el => el.style.display); other.forEach(el => { el.style.display = 'none'; });
        const bits = [document.title, document.body.innerText];
        other.forEach((el, i) => { el.style.display = saved[i]; });
        for (const el of document.querySelectorAll('[aria-label], [title], [placeholder], [alt], input[type=submit][value], input[type=button][value]')) {
          for (const a of ['aria-label', 'title', 'placeholder', 'alt']) { if (el.hasAttribute(a)) bits.push(el.getAttribute(a)); }
          if (el.matches('input[type=submit], input[type=button]')) bits.push(el.value);
        } return bits.join('\\n'); }"""
    )


def screenshot(page, name: str) -> Path:
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
