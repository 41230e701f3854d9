"""Serving private files (evidence, statements, exports): the one place the response is built.

A file a client or a member of staff uploaded, or one the portal generated from
client data, is served from the portal's own origin, so a PDF with embedded
JavaScript or an HTML file posing as an image must never run there:

- ``Content-Security-Policy: sandbox`` puts the document in a unique opaque
  origin with scripts, forms, pop-ups and plugins' same-origin access off; the
  portal's cookies and pages are out of its reach even if a viewer runs it;
- ``X-Content-Type-Options: nosniff`` keeps the browser to the declared type;
- ``Cache-Control: private, no-store`` keeps regulated records out of shared
  and disk caches.

Callers check permission first; this module only shapes the response.
"""

from __future__ import annotations

from django.http import FileResponse, StreamingHttpResponse

# Only the sandbox: no allow-* tokens, so the file's own scripts never run.
SANDBOX_POLICY = "sandbox"


def harden_file_response(response):
    """Apply the private-file headers to a response already built (e.g. a streamed CSV)."""
    response["Content-Security-Policy"] = SANDBOX_POLICY
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


def private_file_response(
    content,
    *,
    content_type: str,
    filename: str,
    inline: bool = False,
) -> FileResponse | StreamingHttpResponse:
    """A permission-checked file as a hardened response.

    ``content`` is an open binary file, bytes, or an iterator of str/bytes chunks
    (streamed, e.g. a CSV export). ``inline`` shows it in the browser (evidence
    reviewed on a page); otherwise it downloads. ``filename`` is what the
    browser saves it as; non-ASCII names are encoded by Django (RFC 6266).
    """
    if isinstance(content, bytes):
        import io

        content = io.BytesIO(content)
    if hasattr(content, "read"):
        response = FileResponse(content, content_type=content_type, as_attachment=not inline, filename=filename)
    else:
        from django.utils.http import content_disposition_header

        response = StreamingHttpResponse(content, content_type=content_type)
        response["Content-Disposition"] = content_disposition_header(not inline, filename)
    return harden_file_response(response)
