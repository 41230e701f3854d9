"""Suitability questionnaire, version 1, exactly as loaded by migration 0002.

Never edit this after release: answers given to version 1 are read against it. A new version
is a new module loaded with ``manage.py load_questionnaire``.
"""


def t(en: str, zh: str) -> dict:
    return {"en": en, "zh-hant": zh}


def choice(code, label, options, **extra):
    return {"code": code, "type": "choice", "label": label, "required": True,
            "options": [{"value": v, "label": lbl, "points": p} for v, lbl, p in options], **extra}


def integer(code, label, **extra):
    return {"code": code, "type": "integer", "label": label, "required": True, "min": 0, "max": 100000, **extra}


def text(code, label, **extra):
    return {"code": code, "type": "text", "label": label, "required": True, "max_length": 200, **extra}


def yes_no(code, label, **extra):
    return {"code": code, "type": "boolean", "label": label, "required": True, **extra}


# Experience counts, but never outweighs what the client says about losses (see "caps").
YEARS_BANDS = [{"min": 0, "points": 0}, {"min": 3, "points": 1}]
TRADES_BANDS = [{"min": 0, "points": 0}, {"min": 10, "points": 1}]

QUESTIONNAIRE_V1 = {
    "title": "Suitability and knowledge assessment",
    "steps": [
        {
            "code": "financial",
            "title": t("Your financial situation", "您的財務狀況"),
            "intro": t(
                "Your income, net worth and liquid assets come from your profile. These questions ask how secure they are.",
                "您的收入、資產淨值及流動資產取自您的個人資料。以下問題了解其穩定程度。",
            ),
            "questions": [
                choice("income_stability", t("How stable is your income?", "您的收入有多穩定？"), [
                    ("stable", t("Stable and expected to continue", "穩定並預期持續"), 2),
                    ("variable", t("Variable", "不穩定"), 1),
                    ("none", t("No regular income", "沒有固定收入"), 0),
                ]),
                choice("emergency_reserve", t("Do you keep cash for emergencies outside your investments?", "您在投資以外是否備有應急現金？"), [
                    ("six_months", t("Yes, six months of expenses or more", "有，足夠六個月或以上開支"), 2),
                    ("less", t("Yes, less than six months", "有，但少於六個月開支"), 1),
                    ("no", t("No", "沒有"), 0),
                ]),
                choice("va_share", t("What share of your net worth would you put into virtual assets, including financed positions?", "您打算將多少比例的資產淨值投放於虛擬資產（包括以融資持有的倉位）？"), [
                    ("lt10", t("Under 10%", "少於10%"), 1),
                    ("10_30", t("10% to 30%", "10%至30%"), 2),
                    ("30_50", t("30% to 50%", "30%至50%"), 3),
                    ("gt50", t("Over 50%", "超過50%"), 3),
                ]),
            ],
        },
        {
            "code": "objectives",
            "title": t("Objectives and horizon", "投資目標及年期"),
            "questions": [
                choice("objective", t("What is your main investment objective?", "您的主要投資目標是甚麼？"), [
                    ("preservation", t("Preserve my capital", "保本"), 0),
                    ("income", t("Regular income", "穩定收入"), 1),
                    ("balanced", t("A balance of income and growth", "收入與增長並重"), 2),
                    ("growth", t("Capital growth", "資本增長"), 3),
                    ("speculation", t("High returns from short-term trading", "透過短線買賣追求高回報"), 4),
                ]),
                choice("horizon", t("How long do you plan to keep these investments?", "您計劃持有這些投資多久？"), [
                    ("lt1", t("Less than one year", "少於一年"), 0),
                    ("1_3", t("One to three years", "一至三年"), 1),
                    ("3_5", t("Three to five years", "三至五年"), 2),
                    ("gt5", t("More than five years", "五年以上"), 3),
                ]),
            ],
        },
        {
            "code": "tolerance",
            "title": t("Risk tolerance", "風險承受能力"),
            "questions": [
                choice("loss_reaction", t("If your investments fell 30% in one month, what would you do?", "如果您的投資在一個月內下跌30%，您會怎樣做？"), [
                    ("sell_all", t("Sell everything", "全部沽出"), 0),
                    ("sell_some", t("Sell some", "沽出部分"), 1),
                    ("hold", t("Hold and wait", "繼續持有"), 2),
                    ("buy_more", t("Buy more", "增持"), 4),
                ]),
                choice("max_loss", t("What is the largest loss in a year you could accept?", "您一年內最多可接受多少虧損？"), [
                    ("lt5", t("Under 5%", "少於5%"), 0),
                    ("5_15", t("5% to 15%", "5%至15%"), 1),
                    ("15_30", t("15% to 30%", "15%至30%"), 3),
                    ("gt30", t("Over 30%, including losing more than I put in when using margin", "超過30%，包括使用保證金時虧損多於投入的本金"), 4),
                ]),
            ],
        },
        {
            "code": "experience",
            "title": t("Investment experience", "投資經驗"),
            "intro": t(
                "Count only your own transactions in the past three years. We may ask for statements.",
                "只計算您本人在過去三年內的交易。我們或會要求您提供結單。",
            ),
            "questions": [
                integer("shares_years", t("Years of experience trading shares", "買賣股票的經驗（年）"), bands=YEARS_BANDS),
                integer("shares_transactions_3y", t("Share transactions in the past three years", "過去三年的股票交易次數"), bands=TRADES_BANDS),
                integer("margin_years", t("Years of experience with margin financing", "使用保證金融資的經驗（年）"), bands=YEARS_BANDS),
                integer("margin_transactions_3y", t("Margin-financed transactions in the past three years", "過去三年以保證金融資進行的交易次數"), bands=TRADES_BANDS),
                integer("derivative_years", t("Years of experience trading derivatives (futures, options, warrants, CBBCs, perpetual contracts)", "買賣衍生產品（期貨、期權、認股證、牛熊證、永續合約）的經驗（年）"), bands=YEARS_BANDS),
                integer("derivative_transactions_3y", t("Derivative transactions in the past three years", "過去三年的衍生產品交易次數"), bands=TRADES_BANDS),
                integer("va_years", t("Years of experience trading virtual assets", "買賣虛擬資產的經驗（年）"), bands=YEARS_BANDS),
                integer("va_transactions_3y", t("Virtual-asset transactions in the past three years", "過去三年的虛擬資產交易次數"), bands=TRADES_BANDS),
                text("va_assets", t("Which virtual assets did you trade, and where?", "您曾買賣哪些虛擬資產？在哪裏買賣？"),
                     show_if={"question": "va_transactions_3y", "gt": 0}),
                choice("va_frequency", t("How often did you trade virtual assets?", "您買賣虛擬資產的頻率？"), [
                    ("rarely", t("A few times a year", "每年數次"), 0),
                    ("monthly", t("About monthly", "大約每月"), 0),
                    ("weekly", t("Weekly or more often", "每星期或更頻密"), 0),
                ], show_if={"question": "va_transactions_3y", "gt": 0}),
            ],
        },
        {
            "code": "knowledge",
            "title": t("Training and work experience", "培訓及工作經驗"),
            "intro": t(
                "A yes needs the details: without them we must treat you as having no knowledge.",
                "如回答「是」，請提供詳情：否則我們須視您為不具備相關知識。",
            ),
            "questions": [
                yes_no("va_training", t("Have you attended training or a course on virtual assets?", "您曾否參加有關虛擬資產的培訓或課程？")),
                text("va_course", t("Which course?", "哪個課程？"), show_if={"question": "va_training", "equals": True}),
                text("va_course_provider", t("Who ran it, and when?", "由誰舉辦？於何時參加？"), show_if={"question": "va_training", "equals": True}),
                yes_no("va_work", t("Do you have current or previous work experience related to virtual assets?", "您現時或過往是否有與虛擬資產相關的工作經驗？")),
                text("va_work_role", t("Which role?", "哪個職位？"), show_if={"question": "va_work", "equals": True}),
                text("va_work_employer", t("With which employer, and for how long?", "於哪間機構任職？任職多久？"), show_if={"question": "va_work", "equals": True}),
                yes_no("derivative_training", t("Have you attended training or a course on derivatives?", "您曾否參加有關衍生產品的培訓或課程？")),
                text("derivative_course", t("Which course?", "哪個課程？"), show_if={"question": "derivative_training", "equals": True}),
                text("derivative_course_provider", t("Who ran it, and when?", "由誰舉辦？於何時參加？"), show_if={"question": "derivative_training", "equals": True}),
                yes_no("derivative_work", t("Do you have current or previous work experience related to derivatives?", "您現時或過往是否有與衍生產品相關的工作經驗？")),
                text("derivative_work_role", t("Which role?", "哪個職位？"), show_if={"question": "derivative_work", "equals": True}),
                text("derivative_work_employer", t("With which employer, and for how long?", "於哪間機構任職？任職多久？"), show_if={"question": "derivative_work", "equals": True}),
            ],
        },
    ],
    # Total points → risk profile (1 conservative … 5 aggressive): the first band whose max is not exceeded.
    "risk_bands": [{"max": 6, "profile": 1}, {"max": 12, "profile": 2}, {"max": 18, "profile": 3}, {"max": 24, "profile": 4}, {"max": 999, "profile": 5}],
    "caps": [
        {"when": [{"question": "max_loss", "in": ["lt5"]}], "max_profile": 2,
         "reason": t("Accepting losses of under 5% a year limits the profile to moderately conservative.", "只可接受每年少於5%的虧損，風險取向最高為「中度保守」。")},
        {"when": [{"question": "loss_reaction", "in": ["sell_all"]}], "max_profile": 2,
         "reason": t("Selling everything after a fall limits the profile to moderately conservative.", "在下跌時會全部沽出，風險取向最高為「中度保守」。")},
        {"when": [{"question": "max_loss", "in": ["5_15"]}], "max_profile": 3,
         "reason": t("Accepting losses of at most 15% a year limits the profile to balanced.", "只可接受每年最多15%的虧損，風險取向最高為「平衡」。")},
        {"when": [{"question": "horizon", "in": ["lt1"]}], "max_profile": 3,
         "reason": t("A horizon under one year limits the profile to balanced.", "投資年期少於一年，風險取向最高為「平衡」。")},
        {"when": [{"question": "emergency_reserve", "in": ["no"]}, {"question": "income_stability", "in": ["none"]}], "max_profile": 2,
         "reason": t("No regular income and no emergency cash limit the profile to moderately conservative.", "沒有固定收入亦沒有應急現金，風險取向最高為「中度保守」。")},
    ],
    "warnings": [
        {"code": "aggressive_short_horizon",
         "when": [{"question": "loss_reaction", "in": ["buy_more"]}, {"question": "horizon", "in": ["lt1"]}],
         "message": t("You would buy more after a 30% fall but plan to invest for less than a year.", "您表示在下跌30%後會增持，但計劃持有投資少於一年。")},
        {"code": "large_loss_short_horizon",
         "when": [{"question": "max_loss", "in": ["gt30"]}, {"question": "horizon", "in": ["lt1"]}],
         "message": t("You accept losses over 30% but plan to invest for less than a year.", "您可接受超過30%的虧損，但計劃持有投資少於一年。")},
        {"code": "preservation_large_loss",
         "when": [{"question": "objective", "in": ["preservation"]}, {"question": "max_loss", "in": ["15_30", "gt30"]}],
         "message": t("Your objective is to preserve capital, yet you accept losses over 15%.", "您的目標是保本，但您可接受超過15%的虧損。")},
        {"code": "speculation_sells_all",
         "when": [{"question": "objective", "in": ["speculation"]}, {"question": "loss_reaction", "in": ["sell_all"]}],
         "message": t("You seek high short-term returns but would sell everything after a fall.", "您追求短線高回報，但在下跌時會全部沽出。")},
        {"code": "concentration_no_reserve",
         "when": [{"question": "va_share", "in": ["gt50"]}, {"question": "emergency_reserve", "in": ["no"]}],
         "message": t("You would put over half your net worth into virtual assets with no emergency cash.", "您打算將超過一半資產淨值投放於虛擬資產，但沒有應急現金。")},
    ],
    # How each knowledge basis is read from the answers. A flag without its follow-up answers is not enough.
    "knowledge": {
        "va": [
            {"basis": "training", "flag": "va_training", "details": ["va_course", "va_course_provider"]},
            {"basis": "work_experience", "flag": "va_work", "details": ["va_work_role", "va_work_employer"]},
            {"basis": "trading_experience", "count": "va_transactions_3y", "min": 1, "details": ["va_assets", "va_frequency"]},
        ],
        "derivatives": [
            {"basis": "training", "flag": "derivative_training", "details": ["derivative_course", "derivative_course_provider"]},
            {"basis": "work_experience", "flag": "derivative_work", "details": ["derivative_work_role", "derivative_work_employer"]},
            {"basis": "trading_experience", "count": "derivative_transactions_3y", "min_policy": "derivative_min_transactions", "details": []},
        ],
    },
}
