"""The one way a staff list leaves the portal as a file: streamed CSV or XLSX, in constant memory.

* CSV is UTF-8 with a byte-order mark, so Excel opens Chinese names correctly, and is produced
  while the rows are read (a generator of byte chunks behind a ``StreamingHttpResponse``).
* XLSX is written by openpyxl in write-only mode (rows go to a temporary file as they come, never
  a worksheet in memory), then the finished file is streamed back in chunks.
* Every text cell is neutralised against formula injection: a spreadsheet treats a cell that
  starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some programs strip
  before they look) as a formula, so a client's name or a browser's User-Agent could otherwise run
  in the compliance officer's spreadsheet. Such cells get a leading apostrophe, which every
  spreadsheet program reads as "this is text" and does not show.
* Times are Hong Kong time, as ISO 8601 with their offset; money and quantities stay numbers.

Callers pass an iterable of rows (a queryset's ``.iterator()``) and the columns as
``(header, getter)`` pairs; the getter takes a row and returns its value.
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from django.http import FileResponse, StreamingHttpResponse
from django.utils import timezone

from .files import private_file_response

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMATS = ("csv", "xlsx")
_BOM = "\ufeff"
_ROWS_PER_CHUNK = 1000
_XLSX_MAX_ROWS = 1_048_576  # Excel's limit per sheet, header included


@dataclass(frozen=True)
class Column:
    header: Any  # a (lazy) translated label or a plain string
    get: Callable[[Any], Any]


def columns(*spec: tuple[Any, str | Callable[[Any], Any]]) -> list[Column]:
    """``columns(("Id", "pk"), ("Client", "client.email"), ("Amount", lambda r: r.x))``."""
    return [Column(header, attrgetter(getter) if isinstance(getter, str) else getter) for header, getter in spec]


_ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def hk_times(value: Any) -> Any:
    """JSON as stored in the audit trail (times in UTC, ``…Z``) with every timestamp shown in Hong Kong time."""
    if isinstance(value, dict):
        return {k: hk_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [hk_times(v) for v in value]
    if isinstance(value, str) and _ISO_UTC.match(value):
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


class _Buffer:
    """A write target for csv.writer that collects text until we yield it."""

    def __init__(self):
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    def take(self) -> bytes:
        data = "".join(self.parts).encode("utf-8")
        self.parts.clear()
        return data


def csv_chunks(rows: Iterable, cols: Sequence[Column]) -> Iterator[bytes]:
    """The CSV file as byte chunks: BOM and header first, then about a thousand rows per chunk."""
    buffer = _Buffer()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(_BOM)
    writer.writerow(_header(cols))
    getters = [c.get for c in cols]
    pending = 0
    for row in rows:
        writer.writerow([cell(g(row)) for g in getters])
        pending += 1
        if pending >= _ROWS_PER_CHUNK:
            yield buffer.take()
            pending = 0
    yield buffer.take()


class TooManyRows(ValueError):
    pass


def xlsx_write(rows: Iterable, cols: Sequence[Column], target, *, sheet_title: str = "Export") -> int:
    """Write the rows as an XLSX workbook to the binary file ``target``; returns the row count.

    Excel holds 1,048,576 rows a sheet; a longer export continues on further sheets.
    """
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    header = _header(cols)
    getters = [c.get for c in cols]
    title = neutralise(str(sheet_title))[:28].replace("/", "-") or "Export"
    sheet, on_sheet, written, sheets = None, _XLSX_MAX_ROWS, 0, 0
    for row in rows:
        if on_sheet >= _XLSX_MAX_ROWS:
            sheets += 1
            sheet = workbook.create_sheet(title if sheets == 1 else f"{title} {sheets}")
            sheet.append(header)
            on_sheet = 1
        sheet.append([cell(g(row)) for g in getters])
        on_sheet += 1
        written += 1
    if sheet is None:
        workbook.create_sheet(title).append(header)
    workbook.save(target)
    return written


def csv_response(rows: Iterable, cols: Sequence[Column], *, filename: str) -> StreamingHttpResponse:
    """Streamed as the rows are read, with the private-file headers (sandbox CSP, no-store, nosniff)."""
    return private_file_response(csv_chunks(rows, cols), content_type=CSV_CONTENT_TYPE, filename=filename)


def xlsx_response(rows: Iterable, cols: Sequence[Column], *, filename: str, sheet_title: str = "Export") -> FileResponse:
    # A temporary file, not memory: a million rows stay on disk until they are sent.
    target = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it once sent
    xlsx_write(rows, cols, target, sheet_title=sheet_title)
    target.seek(0)
    return private_file_response(target, content_type=XLSX_CONTENT_TYPE, filename=filename)


def export_response(fmt: str, rows: Iterable, cols: Sequence[Column], *, basename: str, sheet_title: str = "Export"):
    """``fmt`` is "csv" or "xlsx" (anything else is the caller's 404)."""
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    if fmt == "xlsx":
        return xlsx_response(rows, cols, filename=f"{basename}-{stamp}.xlsx", sheet_title=sheet_title)
    return csv_response(rows, cols, filename=f"{basename}-{stamp}.csv")
