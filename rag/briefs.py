"""Briefs of a period and overviews of a topic: the news grouped into events, ranked, dated and cited.

"What happened in AI this week?" asks about a period as a whole. Its words match no story in
particular, so a top-k search returns a few arbitrary stories and the relevance gate rightly refuses
them. A brief instead reads every story of the period from the catalogue, groups the stories that
report one event (the same launch written up by several outlets, or again a few days later), and ranks
the events by how widely they were covered: stories plus distinct outlets, so an event that
near-duplicates were merged into counts every outlet that carried it. Ties go to the newer event.

An overview ("Tell me about Qwen", "What's going on with Nvidia?") reads every story that names the
topic, leads with the newest events -- a reader asking about a thing wants where it stands now, not
its first paper -- then lists the most widely covered older events in time order as milestones.

Every event line copies one sentence of the story it cites, led only by that story's date and outlets
("May 3, 2026 · TechCrunch, Wired: ..."), which is the form rag.verify accepts as a quote: briefs are
verified like every answer, and cheaply, since a quoted sentence needs no embedding.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from rag.calibration import EVENT_DAYS, NAMED_EVENT_COSINE, SAME_EVENT_COSINE
from rag.records import Answer, Filters, Source
from rag.store import StoryRow
from rag.text import STOPWORDS, names, normalize_space, request_terms, search_terms, split_sentences, words
from rag.timeparse import TimeIntent, parse_time_intent
from rag.verify import verify_answer

if TYPE_CHECKING:
    from rag.pipeline import NewsBot

# ------------------------------------------------------------------------------------ event limits
# Event thresholds are fitted constants (rag/calibration.py); these caps are design choices.
MAX_EVENT_SPAN_DAYS = 10      # no chain of pairwise links may turn a month of one company's news into an event
MAX_EVENT_STORIES = 12
# How many events a brief shows: a reader scans a week in a handful of lines and a year in ten.
EVENTS_SHORT, EVENTS_MONTH, EVENTS_LONG = 6, 8, 10
MAX_ALSO = 4                  # further stories of one event cited under its lead line
OVERVIEW_LATEST, OVERVIEW_MILESTONES = 3, 5
# "Tell me about <topic>" is an overview only when the topic has a story to tell: news of one or two events
# reads better as an answer (their facts, quoted) than as a list of their headlines.
OVERVIEW_MIN_EVENTS = OVERVIEW_LATEST
TOPIC_COVERAGE = 0.75         # rarity-weighted share of the topic's terms a story must hold to be "about" it
# A name in hundreds of stories ("Google") is mostly mentioned in passing: an overview of it then reads the
# stories whose headline names it, when there are enough of those to tell its story.
TOPIC_MANY, TOPIC_HEADLINES = 60, 10
SOURCES_LISTED = 10           # an answer's `sources` hold at least this many stories (the pipeline's default k)
RECENT_DAYS = 7               # "What's new in AI?" with no period: the last week, widened when it is empty

# ------------------------------------------------------------------------------------ question intent

_OVERVIEW_HEAD = re.compile(
    r"^\s*(?:(?:can|could|would|will)\s+you\s+)?(?:please\s+)?"
    r"(?:tell\s+me\s+(?:all\s+|more\s+|everything\s+)?about|"
    r"what(?:['’]?s|\s+is|\s+has\s+been)\s+(?:going\s+on|happening|been\s+happening|up)\s+(?:with|at|in|around)|"
    r"catch\s+me\s+up\s+(?:on|with)|fill\s+me\s+in\s+on|bring\s+me\s+up\s+to\s+speed\s+on|brief\s+me\s+on|"
    r"give\s+me\s+(?:an?\s+|the\s+)?(?:overview|rundown|run-down|summary|recap)\s+of|"
    r"(?:an?\s+)?overview\s+of|update\s+me\s+on)\s+(?P<topic>.+?)\s*[?.!]*\s*$", re.I)
# Words that ask for the news of a period as such ("headlines", "summarize"), and weaker ones that do so
# only when nothing narrower is named ("What happened this week?" but not "What happened to Bard?").
_STRONG_CUE = re.compile(r"\b(?:news|headlines?|stories|roundup|round-up|recap|summar(?:y|ize|ise)|highlights|"
                         r"developments|catch\s+me\s+up|brief\s+me|rundown|run-down|what\s+mattered)\b", re.I)
_WEAK_CUE = re.compile(r"\b(?:happen(?:ed|ing|s)?|going\s+on|went\s+on|new|events?|biggest|top|main)\b", re.I)
# Terms that say how to ask for news or that every AI story shares: a topic made of these is no topic.
_GENERIC = frozenset(search_terms(
    "ai artificial intelligence machine learning news headline headlines story stories event events development "
    "developments happen happened happening happens going went main biggest big top key major important notable "
    "most summarize summarise summary recap roundup round-up round highlight highlights catch brief rundown "
    "overview give show list world industry field space tech technology sector everything anything things "
    "stuff going update updates please tell know me us lately latest newest recent new week weeks month months "
    "year years quarter today past last this so far since mattered matter"))


@dataclass(frozen=True)
class BriefPlan:
    """What a brief or overview question asks for: which kind, which dates, about what."""
    kind: str                       # "brief" (a period) or "overview" (a topic)
    since: date | None
    until: date | None
    topic: str = ""                 # "" = the whole period
    phrase: str | None = None       # the time words as the user wrote them
    default_period: bool = False    # no period named: the last RECENT_DAYS


def _topic_words(text: str) -> str:
    """The question's words that name something narrower than "AI news"."""
    keep = []
    for raw in re.findall(r"\S+", text):
        w = raw.strip(",;:?!()[]\"“”'‘’.")
        terms = [t for t in search_terms(w) if t not in _GENERIC]
        if terms:
            keep.append(re.sub(r"(?:'s|’s)$", "", w))
    return " ".join(keep)





def plan_brief(question: str, today: date, period_filter: bool = False) -> BriefPlan | None:
    """Read a question as a brief or an overview, or None when it asks something narrower.
    `period_filter`: the user's date filters name a period, so "What happened?" asks about it."""
    q = normalize_space(question)
    intent = parse_time_intent(q, today)
    m = _OVERVIEW_HEAD.match(q)
    if m:
        topic_intent = parse_time_intent(m["topic"], today)
        topic = _topic_words(topic_intent.query)
        if not [t for t in search_terms(topic) if t not in request_terms()]:
            return _period_plan(intent)
        # the topic as written ("the FIFA World Cup"), not only its unusual words: "World" is part of the name
        named = re.sub(r"^(?:the|a|an)\s+", "", topic_intent.query.strip(" ?!.,;:"), flags=re.I)
        return BriefPlan("overview", intent.since, intent.until, named or topic, intent.phrase)
    topic = _topic_words(intent.query)
    n_terms = len([t for t in search_terms(topic) if t not in request_terms()])
    strong, weak = bool(_STRONG_CUE.search(q)), bool(_WEAK_CUE.search(q))
    if intent.bounded and ((strong and n_terms <= 2) or (weak and n_terms == 0)):
        return BriefPlan("brief", intent.since, intent.until, topic if n_terms else "", intent.phrase)
    if not intent.bounded and n_terms == 0 and (strong or intent.recency):
        return _period_plan(intent)
    if not intent.bounded and n_terms == 0 and weak and period_filter:
        return BriefPlan("brief", None, None, "", None)
    return None


def period_plan(period: str, today: date, topic: str = "") -> BriefPlan | None:
    """A brief of a period named on its own ("this week", "March 2026"); None when it names no period.
    Empty, "recent" or "latest" mean the last RECENT_DAYS."""
    intent = parse_time_intent(normalize_space(period), today)
    if intent.bounded:
        return BriefPlan("brief", intent.since, intent.until, topic, intent.phrase)
    if not search_terms(intent.query) or intent.recency:
        return BriefPlan("brief", None, None, topic, None, default_period=True)
    return None


def _period_plan(intent: TimeIntent) -> BriefPlan:
    if intent.bounded:
        return BriefPlan("brief", intent.since, intent.until, "", intent.phrase)
    return BriefPlan("brief", None, None, "", None, default_period=True)


# ------------------------------------------------------------------------------------ events

@dataclass
class Event:
    """Stories that report one happening; `stories[0]` is the one the brief quotes."""
    stories: list[StoryRow]

    @property
    def outlets(self) -> list[str]:
        seen: list[str] = []
        for s in self.stories:
            seen += [o for o in s.outlets if o not in seen]
        return seen

    @property
    def coverage(self) -> int:
        """How widely it was covered: its stories plus the distinct outlets that carried it."""
        return len(self.stories) + len(self.outlets)

    @property
    def reports(self) -> int:
        return sum(max(1, len(s.urls)) for s in self.stories)

    @property
    def newest(self) -> date:
        return max(s.published_at for s in self.stories)

    @property
    def first(self) -> date:
        return min(s.published_at for s in self.stories)

    def rank_key(self) -> tuple:
        return (-self.coverage, -self.reports, -self.newest.toordinal(), self.stories[0].id)


_NAME = re.compile(r"\b[A-Z][A-Za-z0-9&\-.]*[A-Za-z0-9]|\b[A-Z]{2,}\b")


def headline_names(title: str, text: str = "") -> frozenset[str]:
    """The names in a headline. Title Case capitalises every word ("Microsoft Probing If Group Obtained
    Data"), so with the story's text at hand a word is a name only when the text capitalises it
    mid-sentence too, or when it is spelled like a name anywhere (inner capitals or digits: "OpenAI",
    "GPT-5")."""
    known = names(text) if text else None
    out = set()
    for w in _NAME.findall(title or ""):
        lw = w.lower()
        bare = lw.replace(".", "")                # "A.I." is "AI"
        terms = search_terms(lw)
        if not terms or set(terms) & _GENERIC or lw in _COMMON_TITLE_WORDS or bare in STOPWORDS \
                or set(search_terms(bare)) & _GENERIC:
            continue
        if any(c.isupper() for c in w[1:]) or any(c.isdigit() for c in w) or known is None or lw in known:
            out.add(lw)
    return frozenset(out)


_COMMON_TITLE_WORDS = frozenset(
    "the a an and or but for with from into over new how why what who when where this that these those is are "
    "was were be its it as at by of on in to up out after before about says said will can could may might "
    "launches launch releases release unveils unveil announces announce report reports study researchers "
    "model models data chip chips startup startups company companies deal funding raises billion million "
    "open source first more most now just big top best".split())


def group_events(rows: list[StoryRow], vectors: np.ndarray) -> list[Event]:
    """Stories joined into events: pairs close in time and meaning, strongest links first, so a chain
    of weak links cannot grow one company's month into a single event (span and size are capped)."""
    n = len(rows)
    if n == 0:
        return []
    order = sorted(range(n), key=lambda i: rows[i].published_at)
    days = np.array([rows[i].published_at.toordinal() for i in order])
    vec = vectors[order]
    heads: dict[int, frozenset[str]] = {}     # only stories in a middling-cosine pair need their names

    def names_of(k: int) -> frozenset[str]:
        got = heads.get(k)
        if got is None:
            got = heads[k] = headline_names(rows[order[k]].title, rows[order[k]].text)
        return got

    pairs: list[tuple[float, int, int]] = []
    block = 256
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        far = int(np.searchsorted(days, days[hi - 1] + EVENT_DAYS, side="right"))
        sims = vec[lo:hi] @ vec[lo:far].T
        for a in range(hi - lo):
            i = lo + a
            stop = int(np.searchsorted(days, days[i] + EVENT_DAYS, side="right"))
            cand = np.nonzero(sims[a, i + 1 - lo:stop - lo] >= NAMED_EVENT_COSINE)[0]
            for c in cand:
                j = i + 1 + int(c)
                s = float(sims[a, j - lo])
                if s >= SAME_EVENT_COSINE or (names_of(i) & names_of(j)):
                    pairs.append((s, i, j))
    parent = list(range(n))
    lo_day, hi_day, size = list(days), list(days), [1] * n

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for _, i, j in sorted(pairs, reverse=True):
        a, b = find(i), find(j)
        if a == b:
            continue
        span = max(hi_day[a], hi_day[b]) - min(lo_day[a], lo_day[b])
        if span > MAX_EVENT_SPAN_DAYS or size[a] + size[b] > MAX_EVENT_STORIES:
            continue
        parent[b] = a
        lo_day[a], hi_day[a], size[a] = min(lo_day[a], lo_day[b]), max(hi_day[a], hi_day[b]), size[a] + size[b]
    groups: dict[int, list[StoryRow]] = {}
    for k, i in enumerate(order):
        groups.setdefault(find(k), []).append(rows[i])
    events = []
    for stories in groups.values():
        # the most widely carried report leads; among equals the first one out
        stories.sort(key=lambda s: (-len(s.outlets), -len(s.urls), s.published_at, s.id))
        events.append(Event(stories))
    return events


def rank_events(events: list[Event]) -> list[Event]:
    return sorted(events, key=Event.rank_key)


# ------------------------------------------------------------------------------------ composition

# A lead that leans on the headline for its subject ("The company paused service ...", "It will ...").
_ANAPHOR = re.compile(r"^(?:It|They|He|She|This|These|Its|Their|The\s+(?:[\w-]+\s+){0,2}(?:company|firm|startup|lab|app|"
                      r"tool|model|service|platform|engine|chipmaker|maker|giant|group|team|report|study|paper|deal|"
                      r"move|cuts?|update|features?|system|agency|researchers|suite|tools?|product|program|"
                      r"initiative|bill|law|rule|policy|lawsuit|case|partnership|acquisition|investment|round))\b")


_CUT = re.compile(r"\b(?:[A-Z]\.){1,3}$")


def lead_sentence(row: StoryRow) -> str:
    """The story's first real sentence when it names what the headline names (news leads carry the who,
    what and when), else the headline: a summary opening "The company is reassigning 7,000 workers"
    means nothing in a list of events."""
    head = headline_line(row)
    must = headline_names(row.title, row.text) or headline_names(row.title)
    for sent in split_sentences(row.text)[:4]:
        n = len(words(sent))
        # (a sentence cut at an initialism, "... its search engine, A.I.", is no lead either)
        if _CUT.search(sent):
            break
        if 6 <= n <= 70 and not sent.rstrip("\"'”’)").endswith("?"):
            if head and (_ANAPHOR.match(sent) or must and not (set(words(sent)) & must) and not (names(sent) & must)):
                return head
            return sent
    return head or (split_sentences(row.text) or [row.title])[0]


def headline_line(row: StoryRow) -> str | None:
    """The headline as a line of its own, when it reads as one statement (not a question, not two)."""
    t = normalize_space(row.title)
    if not t or len(split_sentences(t)) != 1 or t.rstrip("\"'”’)").endswith("?"):
        return None
    return t


def attribution(row: StoryRow) -> str:
    """Only words rag.verify accepts before a quote: the story's own date and outlets."""
    from rag.generators.extractive import human_date
    return f"{human_date(row.published_at)} · {', '.join(row.outlets) or 'unknown'}"


def source_of(row: StoryRow) -> Source:
    return Source(chunk_id=f"{row.id}:0", story_id=row.id, title=row.title, text=row.text,
                  published_at=row.published_at, outlets=list(row.outlets), urls=list(row.urls),
                  tags=list(row.tags), chunk_index=0, score=0.0)


@dataclass
class Composition:
    lines: list[str] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    numbers: dict[str, int] = field(default_factory=dict)

    def cite(self, row: StoryRow) -> int:
        n = self.numbers.get(row.id)
        if n is None:
            self.sources.append(source_of(row))
            n = self.numbers[row.id] = len(self.sources)
        return n

    def event(self, ev: Event, lead: StoryRow | None = None) -> None:
        lead = lead or ev.stories[0]
        self.lines.append(f"- {attribution(lead)}: {lead_sentence(lead)} [{self.cite(lead)}]")
        for other in [s for s in ev.stories if s.id != lead.id][:MAX_ALSO]:
            line = headline_line(other) or lead_sentence(other)
            self.lines.append(f"  - {attribution(other)}: {line} [{self.cite(other)}]")

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def events_to_show(since: date | None, until: date | None) -> int:
    if since is None or until is None:
        return EVENTS_MONTH
    days = (until - since).days + 1
    return EVENTS_SHORT if days <= 10 else EVENTS_MONTH if days <= 45 else EVENTS_LONG


def headline_rows(rows: list[StoryRow], topic: str, weights: dict[str, float]) -> list[StoryRow]:
    """The stories whose headline holds (nearly) all of the topic's rare words."""
    total = sum(weights.values())
    if not total:
        return []
    return [r for r in rows
            if sum(w for t, w in weights.items() if t in set(search_terms(r.title))) >= TOPIC_COVERAGE * total]


# ------------------------------------------------------------------------------------ the engine

class Briefer:
    """Briefs and overviews over one NewsBot's store and embedder."""

    def __init__(self, bot: "NewsBot"):
        self.bot = bot

    # -- reading the store -------------------------------------------------------------------------
    def _vectors(self, rows: list[StoryRow]) -> np.ndarray:
        """Each story's first-chunk vector, from the lexical index's copy (no re-embedding)."""
        lex = self.bot.retriever.lexical()
        ids = [f"{r.id}:0" for r in rows]
        got = lex.vectors(ids)
        missing = [c for c in ids if c not in got]
        if missing:
            got.update(self.bot.store.chunk_vectors(missing))
        dim = int(self.bot.store.meta("embed_dim") or self.bot.embedder.dim)
        out = np.zeros((len(rows), dim), dtype=np.float32)
        for k, c in enumerate(ids):
            v = got.get(c)
            if v is not None:
                out[k] = v
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)

    @staticmethod
    def _filtered(rows: list[StoryRow], filters: Filters | None) -> list[StoryRow]:
        if not filters or not (filters.outlets or filters.tags):
            return rows
        outlets = {o.lower() for o in filters.outlets}
        tags = {t.lower() for t in filters.tags}
        return [r for r in rows if (not outlets or outlets & {o.lower() for o in r.outlets})
                and (not tags or tags & {t.lower() for t in r.tags})]

    def _about(self, rows: list[StoryRow], vectors: np.ndarray, topic: str) -> list[int]:
        """Indexes of the stories about `topic`: holding its rare words, or close to it in meaning."""
        weights = self.bot.retriever.term_stats().weights(topic)
        total = sum(weights.values())
        qvec = self.bot.embedder.embed_one(topic)
        cos = vectors @ qvec if len(rows) else np.zeros(0)
        gate = max(self.bot.settings.min_relevance * 2.5, float(cos.max(initial=0.0)) - 0.15)
        keep = []
        for k, r in enumerate(rows):
            terms = set(search_terms(f"{r.title} {' '.join(r.tags)} {r.text}"))
            cov = sum(w for t, w in weights.items() if t in terms) / total if total else 0.0
            if cov >= TOPIC_COVERAGE or cos[k] >= gate:
                keep.append(k)
        return keep

    def _topic_story_ids(self, topic: str, since: date | None, until: date | None) -> list[str]:
        """Stories whose chunks hold (nearly) all of the topic's rare words, from the BM25 postings:
        exact, whatever the date, so the newest mention is never lost below a top-k cut."""
        from rag.records import date_to_ts
        lex = self.bot.retriever.lexical()
        weights = self.bot.retriever.term_stats().weights(topic)
        total = sum(weights.values())
        bm = lex.bm
        if bm is None or not total:
            return []
        indices, indptr = bm.scores["indices"], bm.scores["indptr"]
        score = np.zeros(len(lex.ids), dtype=np.float32)
        for t, w in weights.items():
            i = bm.vocab_dict.get(t)
            if i is not None:
                score[np.unique(indices[indptr[i]:indptr[i + 1]])] += w
        hit = score >= TOPIC_COVERAGE * total
        if since:
            hit &= lex.ts >= date_to_ts(since)
        if until:
            hit &= lex.ts <= date_to_ts(until)
        return list(dict.fromkeys(lex.ids[r].rsplit(":", 1)[0] for r in np.nonzero(hit)[0]))

    # -- answers -----------------------------------------------------------------------------------
    def stream(self, plan: BriefPlan, base: Answer, filters: Filters | None, t0: float) -> Iterator[dict[str, Any]] | None:
        """The brief's events, or None when the plan finds nothing to brief (the question then goes the
        ordinary way: an overview of a topic the store does not hold is refused there, as usual)."""
        if plan.kind == "overview":
            return self._overview(plan, base, filters, t0)
        return self._brief(plan, base, filters, t0)

    def _period(self, plan: BriefPlan, filters: Filters | None) -> tuple[date | None, date | None]:
        since, until = plan.since, plan.until
        if filters is not None:
            since = max((d for d in (since, filters.since) if d), default=None)
            until = min((d for d in (until, filters.until) if d), default=None)
        if since is not None and until is None:     # "since March": up to today, not past it
            until = self.bot.settings.today_date()
        if plan.default_period and since is None and until is None:
            today = self.bot.settings.today_date()
            newest = self.bot.store.story_rows_between(None, today, limit=1)
            end = newest[0].published_at if newest else today
            since, until = end - timedelta(days=RECENT_DAYS - 1), end
            if len(self.bot.store.story_rows_between(since, until)) < 5:
                since = end - timedelta(days=30)
        return since, until

    def _span(self, f: Filters) -> str:
        if f.since and f.since == f.until:
            from rag.generators.extractive import human_date
            return f"on {human_date(f.since)}"
        return self.bot._range_text(f)

    def _brief(self, plan: BriefPlan, base: Answer, filters: Filters | None, t0: float):
        since, until = self._period(plan, filters)
        rows = self._filtered(self.bot.store.story_rows_between(since, until), filters)
        vectors = self._vectors(rows)
        if plan.topic and rows:
            keep = self._about(rows, vectors, plan.topic)
            rows, vectors = [rows[k] for k in keep], vectors[keep]
        base.filters = Filters(since=since, until=until, outlets=list(filters.outlets) if filters else [],
                               tags=list(filters.tags) if filters else [])
        t1 = time.perf_counter()
        if not rows:
            return self._empty(plan, base, since, until, t0)
        ranked = rank_events(group_events(rows, vectors))
        events = ranked[: events_to_show(since, until)]
        comp = Composition()
        for ev in events:
            comp.event(ev)
        span = self._span(base.filters)
        about = f" about {plan.topic}" if plan.topic else ""
        read = f" (read from \"{plan.phrase}\")" if plan.phrase else ""
        base.notices.append(f"A brief of the {len(rows)} stories{about} published {span}{read}: the {len(events)} "
                            "most widely covered events, most covered first (stories and outlets per event).")
        return self._finish("brief", comp, base, t0, t1, more=[s for e in ranked[len(events):] for s in e.stories])

    def _overview(self, plan: BriefPlan, base: Answer, filters: Filters | None, t0: float):
        since, until = self._period(plan, filters)
        ids = self._topic_story_ids(plan.topic, since, until)
        rows = self._filtered(self.bot.store.story_rows_by_id(ids), filters)
        if not rows:
            return None
        if len(rows) > TOPIC_MANY:
            heads = headline_rows(rows, plan.topic, self.bot.retriever.term_stats().weights(plan.topic))
            rows = heads if len(heads) >= TOPIC_HEADLINES else rows
        vectors = self._vectors(rows)
        base.filters = Filters(since=since, until=until, outlets=list(filters.outlets) if filters else [],
                               tags=list(filters.tags) if filters else [])
        t1 = time.perf_counter()
        events = group_events(rows, vectors)
        if len(events) < OVERVIEW_MIN_EVENTS:
            return None
        newest_first = sorted(events, key=lambda e: (-e.newest.toordinal(), -e.coverage, e.stories[0].id))
        latest = newest_first[:OVERVIEW_LATEST]
        older = rank_events(newest_first[OVERVIEW_LATEST:])[:OVERVIEW_MILESTONES]
        older.sort(key=lambda e: (e.first, e.stories[0].id))
        comp = Composition()
        comp.lines.append("# Latest")
        for ev in latest:   # the newest report leads, so the answer opens with where things stand now
            comp.event(ev, lead=max(ev.stories, key=lambda s: (s.published_at, len(s.outlets))))
        if older:
            comp.lines.append("# Key milestones")
            for ev in older:
                comp.event(ev)
        base.notices.append(f"An overview of {plan.topic} from {len(rows)} stories that name it: the newest "
                            f"{len(latest)} events first, then {len(older)} earlier milestones in time order.")
        return self._finish("overview", comp, base, t0, t1, more=rows)

    def _finish(self, kind: str, comp: Composition, base: Answer, t0: float, t1: float,
                more: list[StoryRow] = ()):
        """Verify and hand out the answer. `sources` lists the cited stories, then (uncited) the next
        stories of the period in rank order, so it holds the top_k stories the JSON contract promises."""
        bot = self.bot
        t2 = time.perf_counter()
        v = verify_answer(comp.text, comp.sources, embedder=bot.embedder,
                          threshold=bot.settings.support_threshold, strict=bot.settings.strict)
        t3 = time.perf_counter()
        base.text = v.text
        base.citations = v.citations
        extra = [source_of(r) for r in more if r.id not in comp.numbers][: max(0, SOURCES_LISTED - len(comp.sources))]
        base.sources = comp.sources + extra
        base.grounded_ratio = v.grounded_ratio
        base.unsupported_sentences = list(v.unsupported)
        base.generator = bot.extractive.name
        base.flags += [kind, *v.flags]
        if v.unsupported:
            base.flags.append(f"unsupported:{len(v.unsupported)}")
        base.timings.update({"retrieve": t1 - t0, "generate": t2 - t1, "verify": t3 - t2})

        def events():
            for i, line in enumerate(base.text.split("\n")):
                yield {"type": "text", "text": ("\n" if i else "") + line}
            base.timings["total"] = time.perf_counter() - t0
            yield {"type": "final", "answer": base}
        return events()

    def _empty(self, plan: BriefPlan, base: Answer, since: date | None, until: date | None, t0: float):
        """Nothing published in the period: say so, and offer the stories just before it as reading."""
        from rag.pipeline import REFUSAL
        span = self._span(base.filters)
        about = f" about {plan.topic}" if plan.topic else ""
        text = f"{REFUSAL}{(' ' + span) if span else ''}: I hold no stories{about} from that period."
        before = self.bot.store.story_rows_between(None, since - timedelta(days=1), limit=200) if since else []
        before = self._filtered(before, base.filters)[:3]
        if before:
            text += " The stories just before it are listed as related reading."
        base.text = text
        base.refused = True
        base.related = [source_of(r) for r in before]
        base.flags.append(plan.kind)

        def events():
            base.timings["total"] = time.perf_counter() - t0
            yield {"type": "text", "text": text}
            yield {"type": "final", "answer": base}
        return events()
