"""Collateral pages for staff: operations (imports, their reports, reconciliation breaks, machine keys)
and the instrument master."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from portal.access import staff_required
from portal.errors import PortalError
from portal.permissions import Perm

from . import selectors, services
from .models import ImportBatch, ImportKind

PAGE = 50


def _page_number(request) -> int:
    try:
        return max(1, int(request.GET.get("page", 1)))
    except ValueError:
        return 1


@staff_required(Perm.FACILITY_OPERATE)
def operations(request):
    token = None
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action == "upload":
                upload = request.FILES.get("file")
                content = upload.read() if upload else request.POST.get("content", "")
                result = services.batch_import(kind=request.POST.get("kind", ""), content=content, actor=request.user, channel="upload")
                if result.batch.status == "applied":
                    messages.success(request, _("Batch %(id)s applied: %(n)s lines.") % {"id": result.batch.batch_id, "n": result.batch.applied_count})
                else:
                    messages.error(request, _("Batch %(id)s rejected: %(n)s line errors; nothing was applied.") % {"id": result.batch.batch_id, "n": len(result.batch.errors)})
                return redirect("collateral:batch", pk=result.batch.pk)
            if action == "resolve":
                services.break_resolve(actor=request.user, break_id=int(request.POST.get("break_id", 0)), note=request.POST.get("note", ""))
                messages.success(request, _("Break resolved."))
            elif action == "key_create":
                _key, token = services.machine_key_create(actor=request.user, name=request.POST.get("name", ""))
            elif action == "key_rotate":
                _key, token = services.machine_key_rotate(actor=request.user, key_id=int(request.POST.get("key_id", 0)))
            elif action == "key_revoke":
                services.machine_key_revoke(actor=request.user, key_id=int(request.POST.get("key_id", 0)), reason=request.POST.get("reason", ""))
                messages.success(request, _("Key revoked."))
            if token is None:
                return redirect("collateral:operations")
        except PortalError as exc:
            messages.error(request, exc.message)
        except ValueError:
            messages.error(request, _("Invalid request."))
    can_keys = request.user.has_perm(Perm.POLICY_APPROVE)
    return render(request, "collateral/operations.html", {
        "batches": list(selectors.import_batches()[:20]),
        "breaks": list(selectors.breaks()[:PAGE]),
        "kinds": ImportKind.choices,
        "columns": services.COLUMNS,
        "keys": list(selectors.machine_keys()[:20]) if can_keys else [],
        "can_keys": can_keys,
        "token": token,
    })


@staff_required(Perm.FACILITY_OPERATE)
def batch(request, pk: int):
    try:
        record = selectors.import_batch(batch_pk=pk)
    except ImportBatch.DoesNotExist:
        raise Http404 from None
    return render(request, "collateral/batch.html", {"b": record, "breaks": list(record.breaks.select_related("instrument")[:200])})


@staff_required(Perm.PRICE_MANAGE)
def instruments(request):
    if request.method == "POST":
        try:
            if request.POST.get("action") == "load":
                upload = request.FILES.get("file")
                if upload is None:
                    raise PortalError("invalid_file", _("Choose an instrument file."))
                result = services.instruments_load(actor=request.user, text=upload.read(), source=upload.name)
                messages.success(request, _("Instrument file loaded: %(c)s new, %(u)s changed.") % {"c": len(result["created"]), "u": len(result["updated"])})
            elif request.POST.get("action") == "suspend":
                suspended = request.POST.get("suspended") == "1"
                services.instrument_update(actor=request.user, code=request.POST.get("code", ""), changes={"suspended": suspended})
                messages.success(request, _("Instrument updated."))
            return redirect(request.get_full_path())
        except PortalError as exc:
            messages.error(request, exc.message)
    page = _page_number(request)
    q = request.GET.get("q", "")
    rows = list(selectors.instruments(search=q, include_inactive=True)[(page - 1) * PAGE: page * PAGE + 1])
    return render(request, "collateral/instruments.html", {"rows": rows[:PAGE], "has_next": len(rows) > PAGE, "page": page, "q": q})
