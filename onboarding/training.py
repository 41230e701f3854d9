"""The portal's short training modules: text a client reads, then a quiz they must pass.

A pass is recorded (``TrainingAttempt``) and becomes the knowledge basis "portal training".
Changing the text or quiz means raising ``version`` so earlier passes stay explainable.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class QuizQuestion:
    code: str
    text: str
    options: tuple[str, ...]
    correct: int


@dataclass(frozen=True)
class Module:
    code: str
    version: int
    title: str
    sections: tuple[tuple[str, str], ...]  # (heading, paragraph)
    quiz: tuple[QuizQuestion, ...]


VA_MODULE = Module(
    code="va",
    version=1,
    title=_("Virtual assets: their nature and risks"),
    sections=(
        (
            _("What a virtual asset is"),
            _(
                "A virtual asset such as bitcoin or ether is a digital record kept on a blockchain. "
                "It is not issued or backed by a government or central bank, it is not a bank deposit, "
                "and it is not protected by the Deposit Protection Scheme or the Investor Compensation Fund."
            ),
        ),
        (
            _("Price swings"),
            _(
                "Virtual-asset prices can rise or fall by more than half within weeks, and they trade around "
                "the clock, including weekends and holidays when you may not be watching. There is no closing "
                "price and no circuit breaker."
            ),
        ),
        (
            _("Borrowing to invest"),
            _(
                "With margin financing you borrow against collateral. Bitcoin and ether count for at most 40% "
                "of their market value as collateral because the firm applies a haircut of at least 60%. "
                "If prices fall you may receive a margin call and must add collateral or repay quickly; if you "
                "do not, the firm may sell your collateral without asking you, and you can lose more than you put in."
            ),
        ),
        (
            _("Custody, fraud and liquidity"),
            _(
                "Virtual assets held with a platform can be lost through hacking or the platform's failure. "
                "Scams often promise guaranteed returns. In a sharp fall it may be impossible to sell at the price "
                "you see on the screen."
            ),
        ),
    ),
    quiz=(
        QuizQuestion("va_q1", _("Is a virtual asset protected by the Deposit Protection Scheme?"),
                     (_("Yes, up to HK$800,000"), _("No, it is not a deposit and is not protected")), 1),
        QuizQuestion("va_q2", _("When can the price of bitcoin move?"),
                     (_("Only during Hong Kong trading hours"), _("At any time, including nights, weekends and holidays")), 1),
        QuizQuestion("va_q3", _("With a 60% haircut, how much lending value does HK$100,000 of bitcoin give?"),
                     (_("HK$40,000"), _("HK$60,000"), _("HK$100,000")), 0),
        QuizQuestion("va_q4", _("If you do not meet a margin call in time, what can happen?"),
                     (_("Nothing until you agree"), _("The firm may sell your collateral and you can lose more than you put in")), 1),
        QuizQuestion("va_q5", _("Someone promises a guaranteed 5% a month on your bitcoin. What is it most likely to be?"),
                     (_("A safe investment"), _("A warning sign of a scam")), 1),
    ),
)

DERIVATIVES_MODULE = Module(
    code="derivatives",
    version=1,
    title=_("Derivatives and perpetual contracts"),
    sections=(
        (
            _("What a derivative is"),
            _(
                "A derivative is a contract whose value depends on something else, such as the price of bitcoin. "
                "Futures, options and perpetual contracts are derivatives. You do not own the underlying asset."
            ),
        ),
        (
            _("Leverage and liquidation"),
            _(
                "Perpetual contracts are traded with leverage: with 10 times leverage a 10% move against you "
                "wipes out your whole margin. When your margin falls below the maintenance level the position "
                "is liquidated automatically, often at a worse price than you expect."
            ),
        ),
        (
            _("Mark price and funding"),
            _(
                "Liquidation is judged on the mark price, a reference price that can differ from the last traded "
                "price. Perpetual contracts have no expiry; instead, holders pay or receive a funding payment "
                "every few hours, which can cost you money even if the price does not move."
            ),
        ),
        (
            _("Who may trade them"),
            _(
                "In Hong Kong, virtual-asset perpetual contracts are offered only to professional investors "
                "who have derivative knowledge. Being a professional investor means you receive fewer protections."
            ),
        ),
    ),
    quiz=(
        QuizQuestion("der_q1", _("With 10 times leverage, roughly what price move against you wipes out your margin?"),
                     (_("1%"), _("10%"), _("100%")), 1),
        QuizQuestion("der_q2", _("What price is liquidation usually judged on?"),
                     (_("The mark price"), _("The price you paid")), 0),
        QuizQuestion("der_q3", _("What is a funding payment?"),
                     (_("A periodic payment between long and short holders of a perpetual contract"), _("A deposit the firm pays you")), 0),
        QuizQuestion("der_q4", _("When does a perpetual contract expire?"),
                     (_("Every quarter"), _("It has no expiry date")), 1),
        QuizQuestion("der_q5", _("Who may trade virtual-asset perpetual contracts in Hong Kong?"),
                     (_("Anyone with a margin account"), _("Professional investors with derivative knowledge")), 1),
    ),
)

MODULES = {VA_MODULE.code: VA_MODULE, DERIVATIVES_MODULE.code: DERIVATIVES_MODULE}


def quiz_score_pct(module: Module, answers: dict) -> int:
    """Percentage of quiz questions answered correctly (answers: code → option index)."""
    correct = 0
    for question in module.quiz:
        try:
            chosen = int(answers.get(question.code))
        except (TypeError, ValueError):
            continue
        correct += chosen == question.correct
    return round(100 * correct / len(module.quiz))
