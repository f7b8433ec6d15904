"""Date bounds out of the words of a news question: "last month", "in Q3 2025", "since March 3, 2025".

People scope news questions in words, not date pickers, while the retriever filters on inclusive dates.
Everything resolves against an explicit `today`, so a question means the same thing in a test, an eval
replay and the live chat. The rules the rest of the product relies on:

- A year is 2000-2099 standing alone. "GPT-4", "H200", "Qwen3-Next-80B", "$3.2 billion", "2,025",
  "2048 GPUs" or "fiscal 2025" never become dates: a wrong hard filter hides every relevant story.
- A month, day or quarter named without a year is the most recent one that has begun by `today`
  ("in March" asked on 2026-02-10 is March 2025).
- Weeks start on Monday. "last week/month/year" is the previous calendar period; "past week", "the last
  year", "last 30 days" are rolling windows ending today.
- Upper bounds are capped at today: nothing is published later, and "this week" reads as Monday..today.
- A period that starts after today is a topic ("plans for 2030"), not a publication filter: it is left in
  the query and sets no bound.
- "latest", "recent", "what's new" set `recency` but no bound: a latest question about an old topic must
  still find it, so ranking rather than filtering handles it.
- Several time phrases combine into one envelope (earliest start, latest end) so no asked-for period is
  cut off; "since 2025 ... before 2026" still reads as 2025 because each phrase bounds only one side.
  Phrases that contradict each other (an empty envelope) set no bound rather than hide everything.
- A date that does not exist ("February 30, 2025") sets no bound, and its year is not read on its own.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Callable

from rag.records import Filters
from rag.text import normalize_space


@dataclass(frozen=True)
class TimeIntent:
    """What a question says about when: hard bounds, ranking wishes and the text left for retrieval."""
    since: date | None           # inclusive
    until: date | None           # inclusive
    recency: bool                # rank newest relevant stories first; never a filter
    timeline: bool               # the answer should be a dated chronology
    query: str                   # the question without its time words, for retrieval
    phrase: str | None           # the matched time phrase as the user wrote it, for display
    spans: tuple[tuple[int, int], ...] = ()   # where the hard time phrases sat in the question
    periods: tuple[tuple[date, date], ...] = ()   # each phrase's own dates (open ends closed at the extremes)
    scoped: bool = False         # the dates scope the question (a filter), not describe its stories (a boost)

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None

    def describe(self) -> str | None:
        """The phrase with the dates it became, so the user can see (and correct) how we read them."""
        if not self.bounded:
            return None
        lo = self.since.isoformat() if self.since else ""
        hi = self.until.isoformat() if self.until else ""
        return f"{self.phrase} -> {lo}..{hi}"

    def filters(self, base: Filters | None = None) -> Filters:
        """Narrow `base` (e.g. the UI's date pickers) by the question's bounds; the tighter side wins."""
        base = base or Filters()
        since = max((d for d in (base.since, self.since) if d), default=None)
        until = min((d for d in (base.until, self.until) if d), default=None)
        return replace(base, since=since, until=until)


# ---------------------------------------------------------------------------------------------- periods

@dataclass(frozen=True)
class _Period:
    since: date
    until: date
    needs_prep: bool = False      # bare "March"/"Monday"/"Q3": only a date after in/during/since...
    rebase: Callable[[int], tuple[date, date] | None] | None = None   # same words in a given year
    year: int | None = None       # the year the user wrote, if any


class _Invalid(Exception):
    """A date that does not exist ("Sept 31, 2025"): no shorter reading of its words, no filter."""

    def __init__(self, end: int):
        super().__init__(end)
        self.end = end


_MONTH_WORD = (r"(?:january|february|march|april|may|june|july|august|september|october|november|december"
               r"|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?(?![\w])")
_MONTH_INDEX = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_WEEKDAY_WORD = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)(?![\w])"
_WEEKDAY_INDEX = {d: i for i, d in enumerate("mon tue wed thu fri sat sun".split())}
# A year stands alone: not glued to letters, digits, "$", "-", "/" or a decimal/thousands separator.
_YEAR_END = r"20\d\d(?![\w%\-/]|[.,]\d)"
_YEAR = r"(?<![\w$€£.,\-/])" + _YEAR_END
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "few": 3, "couple": 2}
_NUM = (r"(?:\d{1,3}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
        r"|(?:a\s+)?few|(?:a\s+)?couple(?:\s+of)?)")
_ORDINAL = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
# Words that make a bare 20xx a count rather than a year ("2000 H100 chips", "top 2000"); after a month
# name a number is always a year.
_COUNT_AFTER = re.compile(
    r"\s*(?:[A-Za-z]*\d[\w\-]*\s+|[A-Z][\w\-]*\s+)?"          # a model or brand may sit between: "2000 H100 chips"
    r"(?i:gpus?|chips?|tokens?|parameters?|params|users?|people|employees|staff|workers|jobs|units|servers|"
    r"companies|startups|models|images|words|pages|lines|times|dollars|usd|euros|mw|gw|kw|tb|gb|mb|hours|"
    r"minutes|seconds|layers|nodes|accelerators|cards|devices|downloads|stars|papers|patents|customers|"
    r"subscribers|engineers|researchers|votes|points|elo)\b")
_COUNT_BEFORE = re.compile(r"(?:\b(?:fiscal|fy|top|than|nearly|almost|roughly|approximately|some|another|"
                           r"additional|only|model|version|v|number|no\.?)\s*|#\s*)$", re.I)


def _month_num(word: str) -> int:
    return _MONTH_INDEX[word.lower().rstrip(".")[:3]]


def _month_end(y: int, m: int) -> date:
    return (date(y + (m == 12), m % 12 + 1, 1) - timedelta(days=1))


def _add_months(d: date, n: int) -> date:
    y, m = divmod(d.month - 1 + n, 12)
    y += d.year
    return date(y, m + 1, min(d.day, _month_end(y, m + 1).day))


def _most_recent(today: date, in_year: Callable[[int], tuple[date, date] | None]) -> tuple[date, date] | None:
    """The occurrence of a yearless period that began most recently, on or before today."""
    for y in (today.year, today.year - 1, today.year - 2, today.year - 3, today.year - 4):
        got = in_year(y)
        if got and got[0] <= today:
            return got
    return None


def _yearless(today: date, in_year: Callable[[int], tuple[date, date] | None],
              needs_prep: bool = False) -> _Period | None:
    got = _most_recent(today, in_year)
    return _Period(got[0], got[1], needs_prep=needs_prep, rebase=in_year) if got else None


def _dated(in_year: Callable[[int], tuple[date, date] | None], year: int) -> _Period | None:
    got = in_year(year)
    return _Period(got[0], got[1], year=year) if got else None


def _day(y: int, m: int, d: int) -> tuple[date, date] | None:
    try:
        x = date(y, m, d)
    except ValueError:
        return None
    return x, x


def _month(y: int, m: int) -> tuple[date, date]:
    return date(y, m, 1), _month_end(y, m)


def _quarter(y: int, q: int) -> tuple[date, date]:
    return date(y, 3 * q - 2, 1), _month_end(y, 3 * q)


def _count(word: str) -> int:
    w = re.sub(r"^a\s+|\s+of$", "", word.lower().strip())
    return int(w) if w.isdigit() else _NUMBER_WORDS[w]


def _unit_start(today: date, unit: str) -> date:
    if unit == "week":
        return today - timedelta(days=today.weekday())
    if unit == "month":
        return today.replace(day=1)
    if unit == "quarter":
        return date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
    return date(today.year, 1, 1)


def _days_ago(today: date, n: int) -> _Period:
    d = today - timedelta(days=n)
    return _Period(d, d)


def _rolling(today: date, n: int, unit: str) -> _Period:
    unit = unit.lower().rstrip("s")
    if unit == "hour":
        return _Period(today - timedelta(days=-(-n // 24)), today)
    if unit == "day":
        return _Period(today - timedelta(days=n - 1), today)
    if unit == "week":
        return _Period(today - timedelta(days=7 * n - 1), today)
    months = {"month": n, "quarter": 3 * n, "year": 12 * n}[unit]
    return _Period(_add_months(today, -months) + timedelta(days=1), today)


def _previous(today: date, unit: str) -> _Period:
    start = _unit_start(today, unit)
    if unit == "week":
        return _Period(start - timedelta(days=7), start - timedelta(days=1))
    back = {"month": 1, "quarter": 3, "year": 12}[unit]
    return _Period(_add_months(start, -back), start - timedelta(days=1))


def _part(since: date, until: date, part: str) -> tuple[date, date]:
    """early/mid/late thirds of a year (Jan-Apr, May-Aug, Sep-Dec) or of a month (1-10, 11-20, 21-end)."""
    part = {"beginning": "early", "start": "early", "end": "late"}.get(part.lower(), part.lower())
    if since.month == until.month:
        cuts = {"early": (1, 10), "mid": (11, 20), "late": (21, until.day)}[part]
        return since.replace(day=cuts[0]), since.replace(day=cuts[1])
    months = {"early": (1, 4), "mid": (5, 8), "late": (9, 12)}[part]
    return date(since.year, months[0], 1), _month_end(since.year, months[1])


def _year_is_count(m: re.Match) -> bool:
    return bool(_COUNT_AFTER.match(m.string, m.end()) or _COUNT_BEFORE.search(m.string, 0, m.start()))


_Builder = Callable[[re.Match, date], "_Period | None"]


def _p_this(m: re.Match, today: date) -> _Period:
    return _Period(_unit_start(today, m["u"].lower()), today)


def _p_this_or_last_month(m: re.Match, today: date) -> _Period | None:
    month = _month_num(m["m"])
    if m["rel"].lower() == "this":
        return _dated(lambda y: _month(y, month), today.year)
    before = today.replace(day=1) - timedelta(days=1)     # strictly before the current month
    got = _most_recent(before, lambda y: _month(y, month))
    return _Period(*got) if got else None


def _p_part_relative(m: re.Match, today: date) -> _Period:
    unit = m["u"].lower()
    base = _Period(_unit_start(today, unit), today) if m["rel"].lower() == "this" else _previous(today, unit)
    full_end = _month_end(base.since.year, 12 if unit == "year" else base.since.month)
    return _Period(*_part(base.since, full_end, m["pw"]))


def _p_weekday(m: re.Match, today: date) -> _Period:
    wd = _WEEKDAY_INDEX[m["wd"].lower()[:3]]
    back = (today.weekday() - wd) % 7
    if back == 0 and m["rel"]:               # "last Monday" on a Monday is a week ago
        back = 7
    d = today - timedelta(days=back)
    return _Period(d, d, needs_prep=not m["rel"])


def _p_iso(m: re.Match, today: date) -> _Period | None:
    y, mo, d = int(m["y"]), int(m["mo"]), int(m["d"])
    got = _dated(lambda yy: _day(yy, mo, d), y)
    if got is None:
        raise _Invalid(m.end())
    return got


def _p_month_day(m: re.Match, today: date) -> _Period | None:
    if m["m"] == "may" and not m["y"]:
        return None
    mo, d = _month_num(m["m"]), int(m["d"])

    def in_year(y: int) -> tuple[date, date] | None:
        return _day(y, mo, d)

    got = _dated(in_year, int(m["y"])) if m["y"] else _yearless(today, in_year)
    if got is None:
        raise _Invalid(m.end())
    return got


def _p_quarter(m: re.Match, today: date) -> _Period | None:
    q = int(m["qn"]) if m["qn"] else _ORDINAL[m["qw"].lower()]
    if m["y"]:
        return _dated(lambda y: _quarter(y, q), int(m["y"]))
    return _yearless(today, lambda y: _quarter(y, q), needs_prep=True)


def _p_half(m: re.Match, today: date) -> _Period | None:
    h = int(m["hn"]) if m["hn"] else _ORDINAL[m["hw"].lower()]
    return _dated(lambda y: (date(y, 6 * h - 5, 1), _month_end(y, 6 * h)), int(m["y"]))


def _p_part_of(m: re.Match, today: date) -> _Period | None:
    if m["m"]:
        mo = _month_num(m["m"])
        return _dated(lambda y: _part(*_month(y, mo), m["pw"]), int(m["y"]))
    return _dated(lambda y: _part(date(y, 1, 1), date(y, 12, 31), m["pw"]), int(m["y"]))


def _p_month_year(m: re.Match, today: date) -> _Period | None:
    mo = _month_num(m["m"])
    return _dated(lambda y: _month(y, mo), int(m["y"]))


def _p_month(m: re.Match, today: date) -> _Period | None:
    word = m["m"]
    # lower-case "may" is nearly always the verb: a month only when nothing follows it
    if word == "may" and re.match(r"\s*[A-Za-z]", m.string[m.end():]):
        return None
    mo = _month_num(word)
    return _yearless(today, lambda y: _month(y, mo), needs_prep=True)


def _p_year_span(m: re.Match, today: date) -> _Period | None:
    a, b = sorted((int(m["a"]), int(m["b"])))
    return _Period(date(a, 1, 1), date(b, 12, 31), year=a)


def _p_year(m: re.Match, today: date) -> _Period | None:
    if _year_is_count(m):
        return None
    return _dated(lambda y: (date(y, 1, 1), date(y, 12, 31)), int(m["y"]))


def _c(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.I)


# Tried in order at one position; the first that matches and resolves wins, so longer forms come first.
_PERIODS: list[tuple[re.Pattern, _Builder]] = [
    (_c(r"(?:the\s+)?day\s+before\s+yesterday\b"), lambda m, t: _days_ago(t, 2)),
    (_c(r"yesterday\b"), lambda m, t: _days_ago(t, 1)),
    (_c(r"(?:today|tonight|this\s+morning)\b"), lambda m, t: _days_ago(t, 0)),
    (_c(r"(?:(?:earlier|so\s+far)\s+)?this\s+(?P<u>week|month|quarter|year)(?:\s+so\s+far)?\b"), _p_this),
    (_c(r"(?:the\s+)?(?:past|last|previous|preceding)\s+(?P<n>" + _NUM + r")\s+"
        r"(?P<u>hours?|days?|weeks?|months?|quarters?|years?)\b"), lambda m, t: _rolling(t, _count(m["n"]), m["u"])),
    # "the last year" is rolling like "the past year"; bare "last year" is the calendar year before
    (_c(r"(?:(?:the|this)\s+)?past\s+(?P<u>day|week|month|quarter|year)\b"
        r"|the\s+last\s+(?P<u2>week|month|quarter|year)\b"), lambda m, t: _rolling(t, 1, m["u"] or m["u2"])),
    (_c(r"(?:last|previous|prior)\s+(?P<u>week|month|quarter|year)\b"), lambda m, t: _previous(t, m["u"].lower())),
    (_c(r"(?:year[\s-]to[\s-]date|ytd)\b"), lambda m, t: _Period(date(t.year, 1, 1), t)),
    (_c(r"(?P<pw>early|mid|late)[\s-]+(?P<rel>this|last)\s+(?P<u>year|month)\b"), _p_part_relative),
    (_c(r"(?P<rel>this|last)\s+(?P<m>" + _MONTH_WORD + r")"), _p_this_or_last_month),
    (_c(r"(?:(?P<rel>last|this\s+past)\s+)?(?P<wd>" + _WEEKDAY_WORD + r")"), _p_weekday),
    (_c(r"(?<![\w\-])(?P<y>20\d\d)[-/](?P<mo>\d{1,2})[-/](?P<d>\d{1,2})(?![\w\-/])"), _p_iso),
    (_c(r"(?<![\w$€£.,\-/])(?P<a>20\d\d)\s*[-–—]\s*(?P<b>20\d\d)(?![\w%\-/]|[.,]\d)"), _p_year_span),
    (_c(r"(?P<m>" + _MONTH_WORD + r")\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?(?!\d)(?:,?\s+(?P<y>" + _YEAR + r"))?"),
     _p_month_day),
    (_c(r"(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m>" + _MONTH_WORD + r")(?:,?\s+(?P<y>" + _YEAR + r"))?"),
     _p_month_day),
    (_c(r"(?:the\s+)?(?:q(?P<qn>[1-4])|(?P<qw>first|second|third|fourth|1st|2nd|3rd|4th)\s+quarter)"
        r"(?:\s*(?:of\s+|,\s*)?(?P<y>" + _YEAR + r"))?(?!\w)"), _p_quarter),
    (_c(r"(?:the\s+)?(?:h(?P<hn>[12])|(?P<hw>first|second|1st|2nd)\s+half)\s+(?:of\s+)?(?P<y>" + _YEAR + r")"),
     _p_half),
    (_c(r"(?:the\s+)?(?P<pw>early|mid|late|beginning|start|end)(?:[\s-]+|\s+of\s+)(?:(?P<m>" + _MONTH_WORD
        + r")\s+)?(?P<y>" + _YEAR_END + r")"), _p_part_of),
    (_c(r"(?P<m>" + _MONTH_WORD + r"),?\s+(?:of\s+)?(?P<y>" + _YEAR + r")"), _p_month_year),
    (_c(r"(?P<m>" + _MONTH_WORD + r")"), _p_month),
    (_c(r"(?P<y>" + _YEAR + r")"), _p_year),
]


def _period_at(text: str, pos: int, today: date) -> tuple[int, _Period] | None:
    for rx, build in _PERIODS:
        m = rx.match(text, pos)
        if m:
            p = build(m, today)
            if p is not None:
                return m.end(), p
    return None


# ---------------------------------------------------------------------------------------------- scanning

@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    since: date | None
    until: date | None
    phrase: str
    from_to: bool = False
    kind: str = "plain"           # "range" (between/from ... to), "open" (since/before/...), "plain"


_RANGE_HEAD = _c(r"(?P<w>between|from)\s+(?:the\s+)?")
_RANGE_JOIN = _c(r"\s*(?:and|to|until|till|through|thru|-|–|—)\s+(?:the\s+)?|\s*[-–—]\s*")
_OPEN_HEAD = _c(r"(?P<op>since|after|before|until|till|through|by|prior\s+to|"
                r"(?:starting|beginning)(?:\s+(?:in|from|on))?)\s+")
_PREP = _c(r"(?P<p>in|during|on|over|within|throughout|for|from|around)\s+")
_CANDIDATE = re.compile(r"(?<![\w'’])(?=\w)")
_POSSESSIVE = re.compile(r"['’]s\b")


def _range_at(text: str, pos: int, today: date) -> _Hit | None:
    head = _RANGE_HEAD.match(text, pos)
    if not head:
        return None
    first = _period_at(text, head.end(), today)
    if not first:
        return None
    join = _RANGE_JOIN.match(text, first[0])
    second = _period_at(text, join.end(), today) if join else None
    if not second:
        return None
    a, b = first[1], second[1]
    if a.rebase and b.year is not None:            # "between March and May 2026"
        a = _rebased(a, b.year) or a
        if a.since > b.since and a.rebase:
            a = _rebased(a, b.year - 1) or a
    elif b.rebase and a.year is not None:          # "from March 2025 to June"
        b = _rebased(b, a.year) or b
        if b.since < a.since and b.rebase:
            b = _rebased(b, a.year + 1) or b
    elif a.rebase and b.rebase and a.since > b.since:   # "between November and February"
        a = _rebased(a, b.since.year - 1) or a
    since, until = min(a.since, b.since), max(a.until, b.until)
    return _Hit(pos, second[0], since, until, text[pos:second[0]], from_to=head["w"].lower() == "from",
                kind="range")


def _rebased(p: _Period, year: int) -> _Period | None:
    got = p.rebase(year) if p.rebase else None
    return _Period(got[0], got[1], rebase=p.rebase, year=year) if got else None


def _open_at(text: str, pos: int, today: date) -> _Hit | None:
    head = _OPEN_HEAD.match(text, pos)
    if not head:
        return None
    got = _period_at(text, head.end(), today)
    if not got:
        return None
    end, p = got
    op = head["op"].lower().split()[0]
    if op in ("since", "starting", "beginning"):
        since, until = p.since, None
    elif op == "after":
        since, until = p.until + timedelta(days=1), None
    elif op in ("before", "prior"):
        since, until = None, p.since - timedelta(days=1)
    else:                                          # until, till, through, by
        since, until = None, p.until
    if p.since > today:
        return None
    return _Hit(pos, end, since, until, text[pos:end], kind="open")


def _plain_at(text: str, pos: int, today: date) -> _Hit | None:
    prep = _PREP.match(text, pos)
    tries = ([(prep.end(), True)] if prep else []) + [(pos, False)]
    for start, with_prep in tries:
        got = _period_at(text, start, today)
        if not got:
            continue
        end, p = got
        if p.needs_prep and not with_prep:
            continue
        return _Hit(pos, end, p.since, p.until, text[start:end])
    return None


def _scan(text: str, today: date) -> list[_Hit]:
    hits: list[_Hit] = []
    cursor = 0
    for cand in _CANDIDATE.finditer(text):
        i = cand.start()
        if i < cursor:
            continue
        try:
            hit = _range_at(text, i, today) or _open_at(text, i, today) or _plain_at(text, i, today)
        except _Invalid as bad:
            cursor = bad.end
            continue
        if hit is None:
            continue
        if hit.since is not None and hit.since > today:
            cursor = hit.end          # a future period is a topic; its year must not be read on its own
            continue
        end = hit.end
        poss = _POSSESSIVE.match(text, end)
        if poss:
            end = poss.end()
        hits.append(replace(hit, end=end))
        cursor = end
    return hits


# A fixed far-off "today" for callers that only need where the time words are, not what they mean.
_SPAN_TODAY = date(2099, 12, 31)


def find_time_phrases(text: str) -> list[tuple[int, int]]:
    """Character spans of time phrases, independent of today: lets follow-up rewriting stay a pure
    function of the conversation while agreeing with parse_time_intent on what counts as time words."""
    return [(h.start, h.end) for h in _scan(text, _SPAN_TODAY)]


# ---------------------------------------------------------------------------------------------- intent

_RECENCY = _c(r"\b(?:latest|newest|most\s+recent(?:ly)?|recent(?:ly)?|lately|current(?:ly)?|"
              r"what(?:['’]?s|\s+is)\s+new|just\s+(?:announce|release|launch|unveil|introduce|ship|drop)\w*|"
              r"up[\s-]to[\s-]date|right\s+now|these\s+days|nowadays)\b")
_TIMELINE = _c(r"\btimelines?\b|\bhistory\s+of\b|\bchronolog(?:y|ical|ically)\b|\bover\s+time\b|"
               r"\bsequence\s+of\s+events\b|\bevolution\s+of\b|"
               r"\bhow\s+(?:did|has|have|had|does|do)\b[^?.!]{1,80}?\b(?:evolve|evolved|unfold|unfolded|develop|"
               r"developed|progress|progressed|play(?:ed)?\s+out)\b|"
               r"\bwhat\s+(?:has\s+)?happened\s+(?:with|to|at|in|around)\b[^?.!]{1,80}?\bover\b")


_NAMED_TIMELINE = _c(r"\btimelines?\b|\bhistory\s+of\b|\bchronolog(?:y|ical|ically)\b|\bsequence\s+of\s+events\b")


def wants_timeline(text: str, hits) -> bool:
    """A dated chronology: asked by name ("timeline of ..."), over a range ("from 2023 to 2025"), or by
    "how did it develop over time" -- unless the question dates two or more particular articles ("the
    report of May 2024 ... the piece of July 2025: how did things develop?"), which asks to compare
    those articles, not to list every event in between."""
    if any(h.from_to for h in hits) or _NAMED_TIMELINE.search(text):
        return True
    return bool(_TIMELINE.search(text)) and len(hits) < 2


def has_recency(text: str) -> bool:
    """Whether the words ask for the newest stories ("latest", "what's new"); shared with follow-up
    detection so "What's new?" counts as a fresh question there."""
    return bool(_RECENCY.search(text or ""))


# Removed from the retrieval query: they say how to rank or shape the answer, not what it is about.
_RANKING_WORDS = _c(r"\b(?:in|over)\s+(?:the\s+)?recent\s+(?:days|weeks|months|years)\b|"
                    r"\b(?:most\s+recent(?:ly)?|latest|newest|recent(?:ly)?|lately)\b|"
                    r"\b(?:(?:an?|the)\s+)?(?:brief\s+|short\s+|full\s+|complete\s+|detailed\s+)?"
                    r"(?:timeline|history|chronology)\s+of\b|\bover\s+time\b|\bin\s+chronological\s+order\b|"
                    r"\bchronologically\b")
_DANGLING = _c(r"(?:^|\s)(?:in|on|of|from|during|for|since|over|and|to|at|by|within|throughout|between|the|"
               r"a|an|,|;|:|-|–)$")
_LEADING_DANGLING = _c(r"^(?:,|;|:|-|–|and)\s+")


def _clean_query(text: str, fallback: str) -> str:
    q = normalize_space(text)
    q = re.sub(r"\s+([,.;:?!])", r"\1", q)
    q = re.sub(r"([,;:])(?=[,;:?!.]|$)", "", q)
    while True:
        before = q
        q = q.rstrip(" ?!.,;:")
        q = _DANGLING.sub("", q).strip()
        q = _LEADING_DANGLING.sub("", q)
        if q == before:
            break
    return q or normalize_space(fallback).rstrip(" ?!.")


# Words that make a date describe an article rather than scope the question: "the article published on
# October 1", "the report from June 2025", "the story CNBC ran in March".
_DESCRIBES = _c(r"\b(?:article|articles|report|reports|reported|story|stories|piece|post|posted|coverage|"
                r"covered|published|ran|appeared|dated|issue|interview|one|ones|op-ed|column)\b"
                r"(?:\W+\w+){0,2}\W*$")


def is_scope(text: str, hits: list[_Hit]) -> bool:
    """Whether the question's dates scope it ("news from March 2026", "what happened last week", "since
    2025") rather than describe the stories it is about ("the article published on October 1 ... the one
    about November"). Dates that describe should rank stories, not hide every other one: a question
    naming two or more plain dates, or a date right after an article word, is describing."""
    if not hits:
        return False
    if any(_DESCRIBES.search(text[max(0, h.start - 60):h.start]) for h in hits if h.kind == "plain"):
        return False
    return sum(h.kind == "plain" for h in hits) <= 1


def parse_time_intent(question: str, today: date) -> TimeIntent:
    """Read the time scope of a news question relative to `today` (see the module docstring for rules)."""
    text = question or ""
    hits = _scan(text, today)
    since = min((h.since for h in hits if h.since), default=None)
    until = max((h.until for h in hits if h.until), default=None)
    if until is not None:
        until = min(until, today)
    if since and until and since > until:       # "after yesterday ... until February": no sane filter
        since = until = None
    kept, last = [], 0
    for h in hits:
        kept.append(text[last:h.start])
        kept.append(" ")
        last = h.end
    kept.append(text[last:])
    stripped = _RANKING_WORDS.sub(" ", "".join(kept))
    return TimeIntent(
        since=since,
        until=until,
        recency=has_recency(text),
        timeline=wants_timeline(text, hits),
        query=_clean_query(stripped, text),
        phrase=" and ".join(normalize_space(h.phrase) for h in hits) or None,
        spans=tuple((h.start, h.end) for h in hits),
        periods=tuple((h.since or date.min, min(h.until or today, today)) for h in hits),
        scoped=is_scope(text, hits) and (since is not None or until is not None),
    )
