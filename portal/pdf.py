"""HTML template → PDF bytes, the one renderer for every document the portal issues.

Statements of account, facility letters, disclosure receipts and the SMF pack are
each rendered from ONE Django template, so the HTML a user reads on screen and
the PDF they download say the same thing. Templates extend ``pdf/base.html``,
which sets an A4 page, page numbers and a font stack that renders Traditional
Chinese (Debian's ``fonts-noto-cjk``: Noto Sans CJK TC) as well as Latin text.

WeasyPrint would otherwise fetch any URL a template mentions (``<img src=…>``,
``@import``), which turns a rendering job into a server-side request forgery.
The fetcher here allows ``data:`` URIs only; documents carry their own styles
inline and never load anything from the network or the disk.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass

from django.template.loader import render_to_string
from django.utils import translation

# Chinese documents: Noto Sans CJK TC first so Chinese glyphs (and the Latin beside them) come from the
# Traditional Chinese variant (not SC/JP forms). English documents: a Latin font first, so a document with
# no Chinese in it never embeds (and subsets) the 20 MB CJK collection; a Chinese name in it still falls
# through to the TC variant.
FONT_STACK = "'Noto Sans CJK TC', 'Noto Sans TC', 'Noto Sans', 'DejaVu Sans', sans-serif"
LATIN_FONT_STACK = "'DejaVu Sans', 'Noto Sans CJK TC', 'Noto Sans TC', sans-serif"


def font_stack(language: str) -> str:
    return FONT_STACK if (language or "").lower().startswith("zh") else LATIN_FONT_STACK
PDF_MEDIA_TYPE = "application/pdf"

# WeasyPrint logs every rendering step at INFO; a statement run renders thousands.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)


@dataclass(frozen=True)
class RenderedDocument:
    """One document in both forms, with the SHA-256 of each as stored."""

    html: str
    pdf: bytes

    @property
    def html_sha256(self) -> str:
        return hashlib.sha256(self.html.encode("utf-8")).hexdigest()

    @property
    def pdf_sha256(self) -> str:
        return hashlib.sha256(self.pdf).hexdigest()


_renderer = threading.local()


# Tables a PDF's embedded font never needs: WeasyPrint's own list plus the vertical metrics (it writes every
# document horizontally, Identity-H), which in the CJK face are 65,000 entries each.
_DROPPED_FONT_TABLES = (b"BASE", b"DSIG", b"EBDT", b"EBLC", b"EBSC", b"GPOS", b"GSUB", b"JSTF", b"LTSH", b"PCLT", b"SVG ",
                        b"VORG", b"vhea", b"vmtx")


def _subset_in_one_pass(font, to_unicode, hinting):
    """``Font._harfbuzz_subset`` of WeasyPrint 70 in one harfbuzz-subset pass instead of two.

    WeasyPrint keeps glyph ids (the page content names glyphs by their id in the full font), then subsets the
    result a second time only to drop the empty glyphs after the last one used. In Noto Sans CJK TC the glyphs a
    statement uses reach id 63,000, so both passes carry tens of thousands of empty glyphs and the second is the
    costlier: a fifth of a Chinese document's rendering (about 20 of 110 ms). One pass with the same flags (and
    without hinting, which the second pass dropped) keeps a few thousand more empty glyphs and no vertical metrics:
    the embedded font is about as large and renders the same.
    """
    from weasyprint.logger import LOGGER
    from weasyprint.text.ffi import ffi, harfbuzz, harfbuzz_subset
    from weasyprint.text.fonts import get_hb_object_data

    plan = ffi.gc(harfbuzz_subset.hb_subset_input_create_or_fail(), harfbuzz_subset.hb_subset_input_destroy)
    glyphs = harfbuzz_subset.hb_subset_input_glyph_set(plan)
    gids = ffi.new(f"hb_codepoint_t[{len(to_unicode)}]", sorted(to_unicode))
    harfbuzz.hb_set_add_sorted_array(glyphs, gids, len(to_unicode))
    flags = (harfbuzz_subset.HB_SUBSET_FLAGS_RETAIN_GIDS | harfbuzz_subset.HB_SUBSET_FLAGS_PASSTHROUGH_UNRECOGNIZED
             | harfbuzz_subset.HB_SUBSET_FLAGS_DESUBROUTINIZE)
    if not hinting:
        flags |= harfbuzz_subset.HB_SUBSET_FLAGS_NO_HINTING
    if font.missing:
        flags |= harfbuzz_subset.HB_SUBSET_FLAGS_NOTDEF_OUTLINE
    harfbuzz_subset.hb_subset_input_set_flags(plan, flags)
    dropped = harfbuzz_subset.hb_subset_input_set(plan, harfbuzz_subset.HB_SUBSET_SETS_DROP_TABLE_TAG)
    tags = sorted(harfbuzz.hb_tag_from_string(tag, -1) for tag in _DROPPED_FONT_TABLES)
    harfbuzz.hb_set_add_sorted_array(dropped, ffi.new(f"hb_codepoint_t[{len(tags)}]", tags), len(tags))
    face = ffi.gc(harfbuzz_subset.hb_subset_or_fail(font.hb_face, plan), harfbuzz.hb_face_destroy)
    content = get_hb_object_data(face) if face else None
    if content:
        font.file_content = content
    else:
        LOGGER.warning('Unable to subset "%s" with HarfBuzz', font.family)


def _subset_fonts_in_one_pass() -> None:
    """Installed for the WeasyPrint release it was written against (pinned in pyproject.toml); any other release
    keeps its own subsetting."""
    import weasyprint
    from weasyprint.pdf.fonts import Font

    if weasyprint.__version__ == "70.0" and Font._harfbuzz_subset is not _subset_in_one_pass:
        Font._harfbuzz_subset = _subset_in_one_pass


def _tools():
    """This thread's URL fetcher and font configuration, made once and reused by every document.

    Making them is most of the fixed cost of a small document: the fetcher builds an SSL context
    (loading the system's CA bundle, about 0.1-0.3 s) although it only ever allows ``data:``, and the
    font configuration initialises fontconfig. Documents declare no ``@font-face``, so one
    configuration serves them all unchanged; one per thread because neither is documented as thread-safe.
    """
    tools = getattr(_renderer, "tools", None)
    if tools is None:
        # Imported lazily: pango is loaded only by processes that render.
        from weasyprint.text.fonts import FontConfiguration
        from weasyprint.urls import URLFetcher

        # data: only, and a refused fetch stops the rendering instead of leaving a hole.
        fetcher = URLFetcher(allowed_protocols={"data"}, fail_on_errors=True, allow_redirects=False)
        _subset_fonts_in_one_pass()
        tools = _renderer.tools = (fetcher, FontConfiguration())
    return tools


# The document's first plain <style> element: the stylesheet every document of a template shares.
_SHARED_STYLE = re.compile(r"<style>(.*?)</style>", re.S)
_SHEETS_KEPT = 32  # templates × languages; a bound, not a tuning knob


def _stylesheet(css: str):
    """``css`` parsed once per thread: parsing it and compiling its selectors was a fifth of a small
    document's rendering, repeated identically for every statement of a run."""
    from weasyprint import CSS

    sheets = getattr(_renderer, "sheets", None)
    if sheets is None:
        sheets = _renderer.sheets = {}
    sheet = sheets.get(css)
    if sheet is None:
        fetcher, fonts = _tools()
        if len(sheets) >= _SHEETS_KEPT:
            sheets.clear()
        sheet = sheets[css] = CSS(string=css, url_fetcher=fetcher, base_url=None, font_config=fonts)
    return sheet


def html_to_pdf(html: str) -> bytes:
    """PDF bytes of a complete HTML document (no external resources are loaded).

    The first plain ``<style>`` is handed to WeasyPrint already parsed (cached by its text) instead of
    being parsed again from the document; the result is the same, as nothing else in a document's
    styles overrides it.
    """
    from weasyprint import HTML

    fetcher, fonts = _tools()
    sheets = []
    shared = _SHARED_STYLE.search(html)
    if shared:
        sheets.append(_stylesheet(shared.group(1)))
        html = html[: shared.start()] + html[shared.end():]
    return HTML(string=html, url_fetcher=fetcher, base_url=None).write_pdf(stylesheets=sheets, font_config=fonts)


def render_html(template_name: str, context: dict, *, language: str) -> str:
    """The template rendered in ``language`` (e.g. "en" or "zh-hant")."""
    with translation.override(language):
        return render_to_string(
            template_name, {"font_stack": font_stack(language), "document_language": language, **context}
        )


def render_document(template_name: str, context: dict, *, language: str) -> RenderedDocument:
    """Render one template to HTML and PDF in the given language."""
    html = render_html(template_name, context, language=language)
    return RenderedDocument(html=html, pdf=html_to_pdf(html))


def pdf_text(pdf: bytes) -> str:
    """The text layer of a PDF (for checks and tests: what a reader's viewer would extract)."""
    import io

    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() or "" for page in reader.pages)
