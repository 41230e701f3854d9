"""The shared PDF renderer: Traditional Chinese renders as text, nothing external is fetched."""

import pytest
from weasyprint.urls import FatalURLFetchingError

from portal.pdf import html_to_pdf, pdf_text, render_document


def test_chinese_and_english_text_survive_into_the_pdf_text_layer():
    pdf = html_to_pdf("<html><body><p>月結單 Monthly statement 保證金比率</p></body></html>")
    assert pdf.startswith(b"%PDF-")
    text = pdf_text(pdf)
    assert "月結單" in text and "保證金比率" in text and "Monthly statement" in text


def test_an_external_resource_stops_the_rendering():
    with pytest.raises(FatalURLFetchingError):
        html_to_pdf('<html><body><img src="http://169.254.169.254/latest/meta-data/"></body></html>')
    with pytest.raises(FatalURLFetchingError):
        html_to_pdf('<html><head><link rel="stylesheet" href="file:///etc/passwd"></head><body>x</body></html>')


def test_a_data_uri_is_allowed():
    pixel = "data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw=="
    assert html_to_pdf(f'<html><body><img src="{pixel}">ok</body></html>').startswith(b"%PDF-")


def test_render_document_uses_the_base_template_and_hashes_what_it_returns(tmp_path, settings):
    (tmp_path / "sample.html").write_text(
        '{% extends "pdf/base.html" %}{% load i18n %}{% block body %}<h1>{% translate "Page" %}</h1>{% endblock %}'
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [*settings.TEMPLATES[0]["DIRS"], tmp_path]}]
    doc = render_document("sample.html", {}, language="zh-hant")
    assert 'lang="zh-hant"' in doc.html and "Noto Sans CJK TC" in doc.html
    assert len(doc.pdf_sha256) == 64 and len(doc.html_sha256) == 64
    assert doc.pdf.startswith(b"%PDF-")


def _font_names(pdf: bytes) -> set[str]:
    import io

    from pypdf import PdfReader

    fonts = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            fonts.add(str(font.get_object()["/BaseFont"]).split("+", 1)[-1])
    return fonts


def test_the_shared_style_is_parsed_once_and_still_applies(monkeypatch):
    import weasyprint

    parsed = []
    real = weasyprint.CSS

    def counting(*args, **kwargs):
        parsed.append(kwargs.get("string"))
        return real(*args, **kwargs)

    monkeypatch.setattr(weasyprint, "CSS", counting)
    style = "p.secret { display: none } /* test_the_shared_style_is_parsed_once */"
    for name in ("first", "second"):
        pdf = html_to_pdf(f"<html><head><style>{style}</style></head><body><p class='secret'>hidden</p><p>{name} shown</p></body></html>")
        text = pdf_text(pdf)
        assert f"{name} shown" in text and "hidden" not in text
    assert parsed.count(style) == 1


def test_an_import_in_the_shared_style_is_refused_too():
    with pytest.raises(FatalURLFetchingError):
        html_to_pdf("<html><head><style>@import url(file:///etc/passwd); p { color: red }</style></head><body>x</body></html>")


def test_a_chinese_document_embeds_one_weight_of_the_cjk_font(tmp_path, settings):
    (tmp_path / "weights.html").write_text(
        '{% extends "pdf/base.html" %}{% block body %}<h1>月結單</h1><table><tr><th>持倉</th></tr>'
        '<tr class="total"><td>總計</td></tr></table><dl class="facts"><dt>客戶</dt><dd>陳大文</dd></dl>{% endblock %}'
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [*settings.TEMPLATES[0]["DIRS"], tmp_path]}]
    zh = render_document("weights.html", {}, language="zh-hant")
    assert _font_names(zh.pdf) == {"Noto-Sans-CJK-TC"}
    assert "月結單" in pdf_text(zh.pdf)
    en = render_document("weights.html", {}, language="en")  # English keeps its bold headings
    assert any(name.endswith("Bold") for name in _font_names(en.pdf))


def _embedded_fonts(pdf: bytes) -> dict:
    import io

    from fontTools.ttLib import TTFont
    from pypdf import PdfReader

    fonts = {}
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            font = font.get_object()
            descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
            stream = (descriptor.get("/FontFile2") or descriptor.get("/FontFile3")).get_object()
            fonts[str(font["/BaseFont"]).split("+", 1)[-1]] = TTFont(io.BytesIO(stream.get_data()))
    return fonts


def test_fonts_are_subset_in_one_pass_keeping_glyph_ids_and_no_vertical_metrics():
    from weasyprint.pdf.fonts import Font

    import portal.pdf

    pdf = html_to_pdf("<html><body><p style=\"font-family: 'Noto Sans CJK TC'\">月結單 Monthly statement</p></body></html>")
    assert Font._harfbuzz_subset is portal.pdf._subset_in_one_pass
    (font,) = _embedded_fonts(pdf).values()
    assert "vmtx" not in font and "VORG" not in font and "CFF " in font
    cmap = font.getBestCmap()
    # Glyph ids kept: the page content names each glyph by its id in the full font.
    assert all(font.getGlyphID(cmap[ord(char)]) > 1000 for char in "月結單")
    assert "月結單 Monthly statement" in pdf_text(pdf)
