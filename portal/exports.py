"""The one way a staff list leaves the portal as a file: streamed CSV or XLSX, in constant memory.

* CSV is UTF-8 with a byte-order mark, so Excel opens Chinese names correctly.
* XLSX is a standard Office Open XML workbook whose sheet is written row by row into a ZIP stream
  (inline strings, no shared-strings table), so the response starts at once and memory stays flat
  whatever the row count or the number of distinct strings. openpyxl's write-only mode was measured
  and not used for lists: its shared-strings table keeps every distinct string in memory (an audit
  export's hashes are all distinct), and it wrote about 6,000 rows/s of a 12-column list here against a
  target of 10,000. openpyxl still reads these files back in the tests and writes the small styled
  SMF pack workbook.
* Every text cell is neutralised against formula injection: a spreadsheet treats a cell that starts
  with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some programs strip before they
  look) as a formula, so a client's name or a browser's User-Agent could otherwise run in the
  compliance officer's spreadsheet. Such cells get a leading apostrophe, which spreadsheets read as
  "this is text".
* Times are Hong Kong time, as ISO 8601 with their offset; money and quantities stay numbers.

A list is exported from its own selector's queryset. Columns are ``(header, "field.path")`` (read
with ``values_list``, no model instances: the fast path), ``(header, "field.path", formatter)``, or
``(header, callable)`` taking the model instance (then every row is a model instance).
"""

from __future__ import annotations

import csv
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from .files import private_file_response

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMATS = ("csv", "xlsx")
CHUNK_ROWS = 2000
XLSX_MAX_ROWS = 1_048_576  # Excel's limit per sheet, header included
_BOM = "\ufeff"


@dataclass(frozen=True)
class Column:
    header: Any  # a (lazy) translated label or a plain string
    get: Callable[[Any], Any]  # from a model instance
    field: str = ""  # the ORM path ("client__email") when the value can be read with values_list
    fmt: Callable[[Any], Any] | None = None  # applied to the field's value


def _path(path: str) -> Callable[[Any], Any]:
    """``obj.a.b`` that is None when any step is None (a nullable foreign key)."""
    steps = path.split(".")

    def get(obj):
        for step in steps:
            if obj is None:
                return None
            obj = getattr(obj, step)
        return obj

    return get


def columns(*spec) -> list[Column]:
    """``columns(("Id", "pk"), ("Client", "client.email"), ("Ref", "facility_id", ref), ("X", lambda obj: ...))``."""
    out = []
    for item in spec:
        header, getter, *rest = item
        if isinstance(getter, str):
            fmt = rest[0] if rest else None
            get = _path(getter)
            out.append(Column(header, (lambda o, g=get, f=fmt: f(g(o))) if fmt else get, getter.replace(".", "__"), fmt))
        else:
            out.append(Column(header, getter))
    return out


_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def hk_times(value: Any) -> Any:
    """JSON as stored in the audit trail (times in UTC, ``…Z``) with every timestamp in Hong Kong time."""
    if isinstance(value, dict):
        return {k: hk_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [hk_times(v) for v in value]
    if isinstance(value, str) and _ISO_TIME.match(value):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return timezone.localtime(moment).isoformat(timespec="seconds")
    return value


def neutralise(text: str) -> str:
    """A text cell a spreadsheet will show as text, never evaluate as a formula."""
    if text and text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def cell(value: Any) -> Any:
    """One value as a safe cell: numbers stay numbers, times become Hong Kong time text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, Decimal, float)):
        return value
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat(timespec="seconds") if timezone.is_aware(value) else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return neutralise(json.dumps(hk_times(value), ensure_ascii=False, sort_keys=True, default=str))
    return neutralise(str(value))


def _header(cols: Sequence[Column]) -> list[str]:
    return [neutralise(str(c.header)) for c in cols]


def rows_of(source, cols: Sequence[Column]) -> Iterator[list]:
    """Each row as a list of safe cells. A queryset whose columns are all field paths is read with
    ``values_list`` (no model instances); anything else row by row through the getters."""
    if isinstance(source, QuerySet):
        if all(c.field for c in cols):
            fmts = [c.fmt for c in cols]
            for values in source.values_list(*[c.field for c in cols]).iterator(chunk_size=CHUNK_ROWS):
                yield [cell(f(v) if f else v) for f, v in zip(fmts, values, strict=True)]
            return
        source = source.iterator(chunk_size=CHUNK_ROWS)
    getters = [c.get for c in cols]
    for obj in source:
        yield [cell(g(obj)) for g in getters]


# --- CSV -------------------------------------------------------------------------------------------------------


class _Sink:
    """A write target that collects output until the generator yields it."""

    def __init__(self):
        self.parts: list = []

    def write(self, data) -> int:
        self.parts.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take_text(self) -> bytes:
        data = "".join(self.parts).encode("utf-8")
        self.parts.clear()
        return data

    def take_bytes(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def csv_chunks(source, cols: Sequence[Column]) -> Iterator[bytes]:
    """The CSV file as byte chunks: BOM and header first, then a couple of thousand rows per chunk."""
    sink = _Sink()
    writer = csv.writer(sink, lineterminator="\r\n")
    sink.write(_BOM)
    writer.writerow(_header(cols))
    pending = 0
    for row in rows_of(source, cols):
        writer.writerow(row)
        pending += 1
        if pending >= CHUNK_ROWS:
            yield sink.take_text()
            pending = 0
    yield sink.take_text()


# --- XLSX -------------------------------------------------------------------------------------------------------

# Characters XML 1.0 cannot carry at all (a spreadsheet would refuse the file).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    "{sheets}</Types>"
)
_SHEET_TYPE = '<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font><font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
_SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
    "<sheetData>"
)
_SHEET_TAIL = "</sheetData></worksheet>"


def _xml_text(text: str) -> str:
    return escape(_XML_ILLEGAL.sub("", text))


def _xlsx_row(values, *, header: bool = False) -> str:
    style = ' s="1"' if header else ""
    parts = ["<row>"]
    for v in values:
        if isinstance(v, (int, Decimal, float)) and not isinstance(v, bool):
            parts.append(f"<c{style}><v>{v}</v></c>")
        elif v == "":
            parts.append("<c/>")
        else:
            parts.append(f'<c{style} t="inlineStr"><is><t xml:space="preserve">{_xml_text(v)}</t></is></c>')
    parts.append("</row>")
    return "".join(parts)


def _sheet_name(title: str, n: int) -> str:
    base = re.sub(r"[\[\]:*?/\\]", "-", str(title)).strip("'")[:25] or "Export"
    return base if n == 1 else f"{base} {n}"


def xlsx_chunks(source, cols: Sequence[Column], *, sheet_title: str = "Export") -> Iterator[bytes]:
    """The XLSX file as byte chunks, written while the rows are read. Past Excel's 1,048,576 rows a
    sheet, the export continues on a further sheet (each with the header)."""
    sink = _Sink()
    zf = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
    header = _xlsx_row(_header(cols), header=True)
    sheets = 0
    rows = rows_of(source, cols)
    exhausted = False
    while not exhausted:
        sheets += 1
        with zf.open(f"xl/worksheets/sheet{sheets}.xml", "w", force_zip64=True) as out:
            out.write((_SHEET_HEAD + header).encode("utf-8"))
            on_sheet, batch = 1, []
            for row in rows:
                batch.append(_xlsx_row(row))
                on_sheet += 1
                if len(batch) >= CHUNK_ROWS:
                    out.write("".join(batch).encode("utf-8"))
                    batch.clear()
                    yield sink.take_bytes()
                if on_sheet >= XLSX_MAX_ROWS:
                    break
            else:
                exhausted = True
            out.write(("".join(batch) + _SHEET_TAIL).encode("utf-8"))
        yield sink.take_bytes()
    names = [_sheet_name(sheet_title, n) for n in range(1, sheets + 1)]
    zf.writestr("[Content_Types].xml", _CONTENT_TYPES.format(sheets="".join(_SHEET_TYPE.format(n=n) for n in range(1, sheets + 1))))
    zf.writestr("_rels/.rels", _ROOT_RELS)
    zf.writestr("xl/workbook.xml", (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>'
        + "".join(f'<sheet name="{_xml_text(name)}" sheetId="{n}" r:id="rId{n}"/>' for n, name in enumerate(names, 1))
        + "</sheets></workbook>"
    ))
    zf.writestr("xl/_rels/workbook.xml.rels", (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        + "".join(f'<Relationship Id="rId{n}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
                  f'Target="worksheets/sheet{n}.xml"/>' for n in range(1, sheets + 1))
        + f'<Relationship Id="rId{sheets + 1}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
        'Target="styles.xml"/></Relationships>'
    ))
    zf.writestr("xl/styles.xml", _STYLES)
    zf.close()
    yield sink.take_bytes()


# --- Responses ------------------------------------------------------------------------------------------------


def csv_response(source, cols: Sequence[Column], *, filename: str) -> StreamingHttpResponse:
    """Streamed as the rows are read, with the private-file headers (sandbox CSP, no-store, nosniff)."""
    return private_file_response(csv_chunks(source, cols), content_type=CSV_CONTENT_TYPE, filename=filename)


def xlsx_response(source, cols: Sequence[Column], *, filename: str, sheet_title: str = "Export") -> StreamingHttpResponse:
    return private_file_response(xlsx_chunks(source, cols, sheet_title=sheet_title), content_type=XLSX_CONTENT_TYPE, filename=filename)


def export_response(fmt: str, source: QuerySet | Iterable, cols: Sequence[Column], *, basename: str, sheet_title: str = "Export"):
    """``fmt`` is "csv" or "xlsx" (anything else is the caller's 404). ``source`` is the list's queryset."""
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    if fmt == "xlsx":
        return xlsx_response(source, cols, filename=f"{basename}-{stamp}.xlsx", sheet_title=sheet_title)
    return csv_response(source, cols, filename=f"{basename}-{stamp}.csv")
