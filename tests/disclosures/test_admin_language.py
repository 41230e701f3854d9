"""Chinese staff read the disclosures admin in Chinese: every field of every disclosures model is named by a
translatable verbose name with a Traditional Chinese translation (issue 14: English column and field names)."""

from __future__ import annotations

import re

import pytest
from django.apps import apps
from django.utils import translation

HAN = re.compile("[\u4e00-\u9fff]")
MODELS = list(apps.get_app_config("disclosures").get_models())


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_every_field_has_a_chinese_name(model):
    with translation.override("zh-hant"):
        english = [f.name for f in model._meta.get_fields()
                   if f.concrete and not f.auto_created and not HAN.search(str(f.verbose_name))]
        assert english == [], f"{model.__name__}: fields named in English only: {english}"
        assert HAN.search(str(model._meta.verbose_name)), model.__name__
