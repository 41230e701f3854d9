"""Links a page shows only to a reader who may follow them (``portal.access.may_open``: the target view's own rule).

A document rendered for no reader (a stored PDF) keeps every link: it is the same for whoever downloads it.
"""

from django import template
from django.utils.html import format_html

from portal.access import may_open as _may_open

register = template.Library()


def _reader_may_open(context, url) -> bool:
    request = context.get("request")
    if request is None:
        return True
    return _may_open(request.user, str(url))


@register.simple_tag(takes_context=True)
def may_open(context, url) -> bool:
    """``{% may_open url as ok %}``: whether the page's reader may open ``url``."""
    return _reader_may_open(context, url)


class LinkedNode(template.Node):
    def __init__(self, url, nodelist):
        self.url, self.nodelist = url, nodelist

    def render(self, context):
        url, text = self.url.resolve(context), self.nodelist.render(context)
        if url and _reader_may_open(context, url):
            return format_html('<a href="{}">{}</a>', url, text)
        return text


@register.tag
def linked(parser, token):
    """``{% linked url %}text{% endlinked %}``: the text as a link to ``url`` where the reader may open it, else the text alone."""
    bits = token.split_contents()
    if len(bits) != 2:
        raise template.TemplateSyntaxError("{% linked url %} takes one URL")
    nodelist = parser.parse(("endlinked",))
    parser.delete_first_token()
    return LinkedNode(parser.compile_filter(bits[1]), nodelist)
