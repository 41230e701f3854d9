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

from django.db import transaction
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


_NUMBER_TYPES = {"AutoField", "BigAutoField", "IntegerField", "BigIntegerField", "SmallIntegerField", "PositiveIntegerField",
                 "PositiveSmallIntegerField", "PositiveBigIntegerField", "DecimalField", "FloatField", "ForeignKey", "OneToOneField"}
_TEXT_TYPES = {"CharField", "TextField", "EmailField", "SlugField", "URLField", "GenericIPAddressField"}
_PREFIX_CHARS = frozenset(FORMULA_PREFIXES)


def _model_field(model, path: str):
    *hops, last = path.split("__")
    for hop in hops:
        model = model._meta.get_field(hop).related_model
    return model._meta.pk if last == "pk" else model._meta.get_field(last)


def _value_batches(queryset: QuerySet, cols: Sequence[Column]) -> Iterator[list[list]]:
    """The fast path: the rows as plain values, a fetch of CHUNK_ROWS at a time from a server-side cursor
    (Django's own compiler and converters, without an iterator layer per row). Each column's conversion is
    chosen once from its model field: numbers pass through (the writers render None as an empty cell),
    text is neutralised, times become Hong Kong time."""
    from django.db.models.sql.constants import MULTI

    text, times, dates, formatted, other = [], [], [], [], []
    for i, col in enumerate(cols):
        if col.fmt is not None:
            formatted.append((i, col.fmt))
            continue
        kind = _model_field(queryset.model, col.field).get_internal_type()
        if kind in _NUMBER_TYPES:
            continue
        (text if kind in _TEXT_TYPES else times if kind == "DateTimeField" else dates if kind == "DateField" else other).append(i)
    tz = timezone.get_current_timezone()
    qs = queryset.values_list(*[c.field for c in cols])
    compiler = qs.query.get_compiler(using=qs.db)
    results = compiler.execute_sql(MULTI, chunked_fetch=True, chunk_size=CHUNK_ROWS)
    converters = compiler.get_converters([s[0] for s in compiler.select[: compiler.col_count]])
    for chunk in results:
        if converters:
            chunk = compiler.apply_converters(chunk, converters)
        batch, seen = [], {}  # times repeat within a batch (one end-of-day run, one revaluation)
        for values in chunk:
            row = list(values)
            for i in text:
                v = row[i]
                if v and v[0] in _PREFIX_CHARS:
                    row[i] = "'" + v
            for i in times:
                v = row[i]
                if v is not None:
                    shown = seen.get(v)
                    if shown is None:
                        shown = seen[v] = v.astimezone(tz).isoformat(timespec="seconds")
                    row[i] = shown
            for i in dates:
                v = row[i]
                if v is not None:
                    row[i] = v.isoformat()
            for i, fmt in formatted:
                v = row[i]
                row[i] = "" if v is None else cell(fmt(v))
            for i in other:
                row[i] = cell(row[i])
            batch.append(row)
        yield batch


def row_batches(source, cols: Sequence[Column]) -> Iterator[list[list]]:
    """The rows as lists of safe cells, in batches. A queryset whose columns are all field paths is read
    as plain values (no model instances); anything else row by row through the getters."""
    if isinstance(source, QuerySet) and all(c.field for c in cols):
        yield from _value_batches(source, cols)
        return
    if isinstance(source, QuerySet):
        source = source.iterator(chunk_size=CHUNK_ROWS)
    getters = [c.get for c in cols]
    batch = []
    for obj in source:
        batch.append([cell(g(obj)) for g in getters])
        if len(batch) >= CHUNK_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def rows_of(source, cols: Sequence[Column]) -> Iterator[list]:
    for batch in row_batches(source, cols):
        yield from batch


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
    """The CSV file as byte chunks: BOM and header first, then one chunk per fetched batch of rows."""
    sink = _Sink()
    writer = csv.writer(sink, lineterminator="\r\n")
    sink.write(_BOM)
    writer.writerow(_header(cols))
    for batch in row_batches(source, cols):
        writer.writerows(batch)
        yield sink.take_text()
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
        elif v is None or v == "":
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


@transaction.atomic
def export_record(*, actor, list_name: str, fmt: str, filters: dict) -> None:
    """Bulk exports are reads, but personal data leaving the portal in bulk is recorded: who, which list,
    which filters (one audit action for every export of every app)."""
    from .audit import audit_log

    audit_log(actor=actor, action="reporting.export.downloaded", object_type="export", object_id=list_name,
              after={"format": fmt, "filters": {k: v for k, v in filters.items() if v not in ("", None, [])}})
