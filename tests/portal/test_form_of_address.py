"""One form of address in Chinese: 您, in every catalogue and every shipped risk disclosure statement."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def _msgstrs(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("msgstr")]


def test_no_catalogue_addresses_the_reader_as_ni_or_gexia():
    catalogues = [p for p in ROOT.glob("**/locale/zh_Hant/LC_MESSAGES/django.po") if ".venv" not in p.parts]
    assert len(catalogues) >= 8
    offending = [(p.relative_to(ROOT), line) for p in catalogues for line in _msgstrs(p) if re.search("你|閣下", line)]
    assert not offending, offending


def test_shipped_disclosures_say_nin():
    texts = list((ROOT / "disclosures" / "content").glob("*/zh-hant.md"))
    assert texts
    for path in texts:
        body = path.read_text(encoding="utf-8")
        assert "你" not in body and "閣下" not in body, path
        assert "您" in body, path
