"""Deterministic suitability scoring, driven entirely by a questionnaire version's definition.

Pure functions: the same definition, answers and policy numbers always give the same result,
so an assessment can be re-scored years later and explained line by line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import translation
from django.utils.translation import gettext as _


def text_in(value: dict | str, language: str | None = None) -> str:
    """A bilingual definition text in ``language`` (default: the active one), English as fallback."""
    if isinstance(value, str):
        return value
    language = language or translation.get_language() or "en"
    return value.get("zh-hant" if language.lower().startswith("zh") else "en") or value.get("en", "")


def _questions(definition: dict):
    for step in definition["steps"]:
        yield from step["questions"]


def question_map(definition: dict) -> dict[str, dict]:
    return {q["code"]: q for q in _questions(definition)}


def is_shown(question: dict, answers: dict) -> bool:
    condition = question.get("show_if")
    if not condition:
        return True
    value = answers.get(condition["question"])
    if "equals" in condition:
        return value == condition["equals"]
    if "gt" in condition:
        return isinstance(value, int) and value > condition["gt"]
    if "in" in condition:
        return value in condition["in"]
    return True


def _matches(conditions: list[dict], answers: dict) -> bool:
    return all(answers.get(c["question"]) in c["in"] for c in conditions)


def validate_step(definition: dict, step_index: int, data: dict, previous: dict) -> tuple[dict, dict]:
    """Clean one step's answers. Returns (cleaned, errors); errors map question code → message.

    ``previous`` holds the answers of other steps, for conditions that refer to them.
    """
    step = definition["steps"][step_index]
    cleaned: dict = {}
    errors: dict = {}
    for question in step["questions"]:
        code, kind = question["code"], question["type"]
        raw = data.get(code)
        if isinstance(raw, str):
            raw = raw.strip()
        if raw in (None, ""):
            cleaned[code] = None
            continue
        if kind == "choice":
            allowed = [o["value"] for o in question["options"]]
            if raw not in allowed:
                errors[code] = _("Choose one of the options.")
            else:
                cleaned[code] = raw
        elif kind == "integer":
            try:
                number = int(raw)
            except (TypeError, ValueError):
                errors[code] = _("Enter a whole number.")
                continue
            if isinstance(raw, bool) or not question.get("min", 0) <= number <= question.get("max", 100000):
                errors[code] = _("Enter a number between %(min)s and %(max)s.") % {"min": question.get("min", 0), "max": question.get("max", 100000)}
            else:
                cleaned[code] = number
        elif kind == "boolean":
            if raw in (True, "true", "True", "yes", "on", "1", 1):
                cleaned[code] = True
            elif raw in (False, "false", "False", "no", "0", 0):
                cleaned[code] = False
            else:
                errors[code] = _("Answer yes or no.")
        else:
            value = str(raw)
            if len(value) > question.get("max_length", 200):
                errors[code] = _("Keep this under %(n)s characters.") % {"n": question.get("max_length", 200)}
            else:
                cleaned[code] = value
    merged = {**previous, **{k: v for k, v in cleaned.items() if k not in errors}}
    for question in step["questions"]:
        code = question["code"]
        if code in errors:
            continue
        if not is_shown(question, merged):
            cleaned[code] = None  # a follow-up to a "no" is not kept
            continue
        if question.get("required") and cleaned.get(code) is None:
            errors[code] = _("Please answer this question.") if not question.get("show_if") else _(
                "Please give these details: without them we must treat you as having no knowledge."
            )
    return cleaned, errors


def missing_steps(definition: dict, answers: dict) -> list[int]:
    """Indexes of steps with a required, shown question still unanswered."""
    missing = []
    for index, step in enumerate(definition["steps"]):
        for question in step["questions"]:
            if question.get("required") and is_shown(question, answers) and answers.get(question["code"]) is None:
                missing.append(index)
                break
    return missing


@dataclass
class ScoreResult:
    risk_score: int
    risk_profile: int
    risk_reasons: list[str] = field(default_factory=list)
    va_knowledge: bool = False
    va_knowledge_basis: str = ""
    va_knowledge_detail: dict = field(default_factory=dict)
    derivative_knowledge: bool = False
    derivative_knowledge_basis: str = ""
    derivative_knowledge_detail: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_fields(self) -> dict:
        return dict(self.__dict__)


def _points(question: dict, value) -> int:
    if value is None:
        return 0
    if question["type"] == "choice":
        return next((o["points"] for o in question["options"] if o["value"] == value), 0)
    if question["type"] == "integer" and question.get("bands"):
        return max((b["points"] for b in question["bands"] if value >= b["min"]), default=0)
    return 0


def _knowledge(rules: list[dict], answers: dict, policy_numbers: dict) -> tuple[bool, str, dict]:
    """The first basis the answers support, with the follow-up answers that support it."""
    for rule in rules:
        details = {code: answers.get(code) for code in rule["details"]}
        if any(v in (None, "") for v in details.values()):
            continue  # a bare self-declaration is not enough
        if "flag" in rule and answers.get(rule["flag"]) is True:
            return True, rule["basis"], details
        if "count" in rule:
            count = answers.get(rule["count"]) or 0
            minimum = policy_numbers[rule["min_policy"]] if "min_policy" in rule else rule["min"]
            if count >= minimum:
                return True, rule["basis"], {**details, rule["count"]: count, "required": minimum}
    return False, "", {}


def answer_text(question: dict, value, language: str | None = None) -> str:
    """An answer as the client saw it: a choice's label, Yes/No, or the number or text given."""
    if value is None:
        return ""
    if question["type"] == "choice":
        return next((text_in(o["label"], language) for o in question["options"] if o["value"] == value), str(value))
    if question["type"] == "boolean":
        with translation.override(language or translation.get_language()):
            return str(_("Yes") if value else _("No"))
    return str(value)


def explain(definition: dict, answers: dict, *, language: str | None = None) -> tuple[list[str], list[str]]:
    """The risk-profile reasons and the inconsistency warnings for ``answers``, in ``language``.

    Deterministic from the (immutable) questionnaire version and the answers, so a result stored in
    one language can be shown in the other."""
    language = language or translation.get_language() or "en"
    total = 0
    reasons: list[str] = []
    for question in _questions(definition):
        value = answers.get(question["code"])
        points = _points(question, value)
        scored = question["type"] == "choice" and any(o["points"] for o in question["options"]) or bool(question.get("bands"))
        if scored:
            shown = answer_text(question, value, language) if question["type"] == "choice" else value
            reasons.append(f"{text_in(question['label'], language)} {shown} (+{points})")
            total += points
    profile = next(b["profile"] for b in definition["risk_bands"] if total <= b["max"])
    with translation.override(language):
        reasons.insert(0, _("Total score %(score)s gives risk profile %(profile)s.") % {"score": total, "profile": profile})
    for cap in definition.get("caps", []):
        if _matches(cap["when"], answers) and profile > cap["max_profile"]:
            profile = cap["max_profile"]
            reasons.insert(1, text_in(cap["reason"], language))
    warnings = [text_in(w["message"], language) for w in definition.get("warnings", []) if _matches(w["when"], answers)]
    return reasons, warnings


def score(definition: dict, answers: dict, *, policy_numbers: dict, language: str = "en") -> ScoreResult:
    """Score completed answers. Reasons and warnings are stored in ``language`` (the client's)."""
    total = 0
    for question in _questions(definition):
        total += _points(question, answers.get(question["code"]))
    profile = next(b["profile"] for b in definition["risk_bands"] if total <= b["max"])
    for cap in definition.get("caps", []):
        if _matches(cap["when"], answers) and profile > cap["max_profile"]:
            profile = cap["max_profile"]
    reasons, warnings = explain(definition, answers, language=language)
    knowledge = definition.get("knowledge", {})
    va, va_basis, va_detail = _knowledge(knowledge.get("va", []), answers, policy_numbers)
    der, der_basis, der_detail = _knowledge(knowledge.get("derivatives", []), answers, policy_numbers)
    return ScoreResult(
        risk_score=total,
        risk_profile=profile,
        risk_reasons=reasons,
        va_knowledge=va,
        va_knowledge_basis=va_basis,
        va_knowledge_detail=va_detail,
        derivative_knowledge=der,
        derivative_knowledge_basis=der_basis,
        derivative_knowledge_detail=der_detail,
        warnings=warnings,
    )
