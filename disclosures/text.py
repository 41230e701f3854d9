"""Disclosure text: canonical form, its hash, and Markdown rendered to safe HTML.

The canonical text is what is stored and hashed, so anyone can recompute a
version's hash from its stored body and compare it with the hash an
acknowledgement recorded:

* Unicode NFC normalisation (the same Chinese character typed two ways hashes alike),
* every line ending (CRLF, CR) becomes LF,
* trailing spaces and tabs are stripped from each line,
* leading and trailing blank lines are dropped, and the text ends with exactly one LF
  (an empty text stays empty).

The hash is the lowercase hex SHA-256 of the canonical text encoded as UTF-8.
"""

from __future__ import annotations

import difflib
import hashlib
import unicodedata

import markdown
import nh3

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "span", "strong", "sub", "sup", "table", "tbody", "td", "th",
    "thead", "tr", "ul",
}  # fmt: skip
# No style, no on* handlers, no id/class that could impersonate the page's own controls.
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


def canonicalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text or "")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip(" \t") for line in text.split("\n")]
    text = "\n".join(lines).strip("\n")
    return f"{text}\n" if text else ""


def content_hash(text: str) -> str:
    """SHA-256 of the canonical form of ``text`` (hex)."""
    return hashlib.sha256(canonicalize(text).encode("utf-8")).hexdigest()


def render(text: str) -> str:
    """Markdown to HTML that cannot run script: raw HTML the author typed is sanitised away."""
    html = markdown.markdown(canonicalize(text), extensions=["tables", "sane_lists"], output_format="html")
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def diff_html(old: str, new: str, *, old_label: str, new_label: str) -> str:
    """A side-by-side HTML table of the changes (difflib escapes the text itself)."""
    return difflib.HtmlDiff(wrapcolumn=70).make_table(
        canonicalize(old).splitlines(),
        canonicalize(new).splitlines(),
        fromdesc=old_label,
        todesc=new_label,
        context=True,
        numlines=2,
    )


def diff_unified(old: str, new: str, *, old_label: str, new_label: str) -> str:
    return "".join(
        difflib.unified_diff(
            canonicalize(old).splitlines(keepends=True),
            canonicalize(new).splitlines(keepends=True),
            fromfile=old_label,
            tofile=new_label,
        )
    )
