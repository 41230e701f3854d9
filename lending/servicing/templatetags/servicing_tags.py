"""``{% facility_servicing_panel facility staff_view %}``: rate, interest accrued to date, next posting, review date, statements."""

from django import template

from .. import selectors

register = template.Library()


@register.filter
def instrument_name(instrument) -> str:
    """An instrument's name in the language of the page (``Instrument.name_for``)."""
    from django.utils.translation import get_language

    return instrument.name_for(get_language()) if instrument else ""


@register.inclusion_tag("servicing/_facility_panel.html", takes_context=True)
def facility_servicing_panel(context, facility, staff_view=False):
    if not facility or not facility.pk:
        return {"summary": None}
    return {
        "facility": facility,
        "summary": selectors.facility_interest(facility=facility),
        "statements": list(selectors.statements_for_staff(facility_id=facility.pk)[:6]),
        "limits": selectors.limit_history(facility=facility),
        "staff_view": staff_view,
        "request": context.get("request"),
    }


@register.inclusion_tag("servicing/_letter.html")
def facility_letter(application):
    """The accepted (or offered) facility letter as a document, made from its stored text only."""
    import re

    from ..letter import letter_blocks

    # The letter stays in the language it was written (and accepted) in, whatever the reader's is now.
    language = "zh-hant" if re.search("[\u4e00-\u9fff]", application.letter_text or "") else "en"
    return {"blocks": letter_blocks(application.letter_text), "application": application, "language": language}
