"""Check every [n] in an answer against the text of the source it points to.

This is the product's guarantee: whatever wrote the answer (the extractive generator, a local LLM, a
remote one), each sentence is re-checked here before the user sees it.

How a sentence is checked against one source
--------------------------------------------
The source is its chunk text PLUS its title, its outlet names and its publication date written the
ways people write dates (2025-09-12, September 12, 2025, Sept. 12, 2025, Sep 12, 12 September 2025,
September 2025, 2025), so "The Verge reported in September 2025 that ..." can be supported by metadata.

A source supports a sentence when

(a) facts match: every number (`rag.text.numbers`, normalised: "1,500" == "1500", "09" == "9",
    "3.20" == "3.2"; spelled-out "eight million" in the source counts as 8) and every name
    (`rag.text.names`, plus a sentence-initial word that is a name elsewhere in the answer or the
    sources, or looks like one: "OpenAI", "GPT-5") occurs in the source -- names case-insensitively,
    a possessive 's allowed; and
(b) score >= threshold, where

        lexical  = |stems(sentence content words) & stems(source)| / |stems(sentence content words)|
        semantic = max cosine(sentence, s) over the source's sentences s and its title
                   (the real MiniLM embedder, normalised vectors)
        score    = 0.5 * lexical + 0.5 * semantic

    An equal-weight mean: lexical coverage alone lets an off-topic sentence built from common domain
    words pass, and cosine alone rates sentences about a neighbouring story of the same company too
    high; each covers the other's blind spot. Paraphrases keep a high cosine while their lexical
    share drops, and copied text scores ~1.0.

A sentence that copies one of the source's sentences word for word (up to markers, emphasis and
spacing), optionally led only by the story's date and outlet ("On May 3, 2025, TechCrunch reported:
...", "2025-05-03 (TechCrunch): ..."), is given score 1.0 without being embedded -- copies score 1.00
in every row of the calibration below, and embedding them is what made verifying an extractive answer
cost seconds. Its numbers and names still go through (a), so a lead with the wrong date or outlet
fails. Only the other sentences (an LLM's wording) are embedded: in one batch per answer.

Calibration (all-MiniLM-L6-v2 over corpus/: 157 stories cut into the real 160-token chunks).
Positives, each checked against its own chunk: sentences copied from it; the same with 30 % of the words
deleted; the first half of one sentence fused with the second half of the next; 60 paraphrases written
by hand for 30 chunks. Negatives: 60 hand-written on-topic fabrications for the same 30 chunks (claims
that reuse the story's vocabulary but are not in it, e.g. "xAI open-sourced Grok 3's weights at launch");
sentences of the most similar *other* story ("near", same company or topic); sentences of a random
other story. Score quantiles, then the share that passes BOTH checks (facts and score >= t):

    set (n)            min   p05   p50   p95   max    pass t=0.55  t=0.65  t=0.70
    copied (236)       1.00  1.00  1.00  1.00  1.00        1.00    1.00    1.00
    30 % cut (236)     0.72  0.80  0.92  0.99  1.00        1.00    1.00    1.00
    fused (116)        0.68  0.80  0.89  0.96  0.97        1.00    1.00    0.99
    paraphrase (60)    0.67  0.71  0.88  0.96  0.97        0.97    0.97    0.92
    fabricated (60)    0.11  0.33  0.52  0.74  0.80        0.43    0.25    0.07
    near story (303)   0.07  0.23  0.40  0.61  0.81        0.02    0.01    0.01
    random (235)       0.01  0.06  0.16  0.37  0.59        0.01    0.00    0.00

(The two paraphrases that fail at 0.55 and 0.65 do so on the fact check: "40 GB" for "40 gigabytes", "the SEC" for the
Securities and Exchange Commission.) Alternatives measured on the same sets: max(lexical, semantic)
passes 62 % of fabrications and 10 % of near-story sentences at 0.55; min(lexical, semantic) at 0.65
loses 9 % of cut and 17 % of fused positives. RECOMMENDED_THRESHOLD = 0.65 keeps every positive set
at >= 97 % and cuts the on-topic fabrications that get through from 43 % (at 0.55) to 25 %; 0.70 is the strict operating point
(7 % of fabrications, 92 % of paraphrases).

Known blind spots: the fabrications that still pass are claims an NLI model would be needed for --
negations and inversions built from the source's own words ("Gemini was trained only on text", "only
available to enterprise customers"), swapped roles between two names that both occur in the source --
and a sentence-initial name that occurs nowhere in the answer or the sources is only penalised through
lexical coverage.

What happens to markers
-----------------------
* a marker to a source that does not exist is removed ("marker [9] points to no source");
* a marker to a source that does not support the sentence is moved to the source that best supports
  it ("moved [3]->[1]"), or dropped when none does;
* a sentence with no marker that a source supports gets that marker ("added [2]");
* a sentence no source supports is flagged (kept in `text` without markers, listed in
  `unsupported`); in strict mode it is dropped from `text`;
* short connective sentences (fewer than 4 content words, no numbers or names), questions (a model
  echoing the user's question claims nothing; their markers are removed) and plain statements that
  the sources do not answer are not counted either way;
* lines starting with "#" (headings) or NOTICE_PREFIX (notices the pipeline adds) are not checked.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from rag.records import Citation, Source
from rag.text import (STOPWORDS, canonical_number, content_words, names, normalize_space, numbers, split_sentences,
                      stems, words)
from rag.untrusted import is_instruction_like

NOTICE_PREFIX = "ⓘ"                 # lines the pipeline adds (fallback notices etc.): never checked
HEADING_PREFIXES = ("#", NOTICE_PREFIX)
MIN_CONTENT_WORDS = 4
RECOMMENDED_THRESHOLD = 0.65       # see the calibration table above; Settings.support_threshold is what runs
LEXICAL_WEIGHT = 0.5

# [1]  [1, 2]  [1;2]  [1-3]  [Source 2]  -- one group; adjacent groups ([1][2]) are found separately.
_MARKER = re.compile(r"\[\s*(?:sources?\s*)?(\d{1,4}(?:\s*(?:[,;]|-|–|and)\s*(?:sources?\s*)?\d{1,4})*)\s*\]", re.I)
_MARKER_AFTER_PUNCT = re.compile(
    r"([.!?…][\"'”’)]*)((?:\s*\[\s*(?:sources?\s*)?\d{1,4}(?:\s*(?:[,;]|-|–|and)\s*(?:sources?\s*)?\d{1,4})*\s*\])+)",
    re.I)
_LIST_PREFIX = re.compile(r"^(\s*(?:[-*+•]|\d{1,3}[.)])\s+)")
_MD_EMPH = re.compile(r"(\*\*|__|\*|`)")
_ABSTAIN = re.compile(
    r"\b(?:(?:the\s+)?(?:provided\s+)?(?:sources?|articles?|context|stories|documents?)\b[^.]*?\b(?:do(?:es)?\s*n[o']?t|did\s*n[o']?t|not|no|never)\b[^.]*?"
    r"\b(?:mention|say|contain|cover|answer|include|provide|address|discuss|specify|state|report|give|describe)\w*"
    r"|i\s+(?:could|can|do|did)\s*(?:not|n['’]t)\s+find|no\s+(?:relevant\s+)?information\b|not\s+(?:mentioned|covered|reported)\s+in\s+the\s+sources?)",
    re.I)
_NUMBER_WORDS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
                 "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "fifteen": "15",
                 "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70",
                 "eighty": "80", "ninety": "90", "hundred": "100", "dozen": "12", "thousand": "1000"}
_NUMBER_WORD_RE = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.I)
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_MONTH_ABBR = ["Jan.", "Feb.", "Mar.", "Apr.", "May", "June", "July", "Aug.", "Sept.", "Oct.", "Nov.", "Dec."]
_MONTH_WORDS = {m.lower() for m in _MONTHS} | {"jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
                                                "oct", "nov", "dec"}


@dataclass
class SentenceCheck:
    sentence: str                 # the answer sentence without markers
    cited: list[int]              # final markers, 1-based source numbers
    supported: bool
    score: float
    reason: str                   # "ok", "number 42 not in [2]", "moved [3]->[1]", "no support", ...
    counted: bool = True          # False for connective sentences and "the sources do not say" statements
    snippets: dict[int, str] = field(default_factory=dict)  # source number -> supporting span


@dataclass
class Verification:
    text: str
    checks: list[SentenceCheck]
    citations: list[Citation]
    grounded_ratio: float
    unsupported: list[str]
    flags: list[str]


# ------------------------------------------------------------------------------------------- helpers

def date_forms(d: date) -> list[str]:
    """A date the ways an answer may write it: 2025-09-12, September 12, 2025, Sept. 12, 12 September 2025..."""
    month, abbr = _MONTHS[d.month - 1], _MONTH_ABBR[d.month - 1]
    return [d.isoformat(), f"{month} {d.day}, {d.year}", f"{abbr} {d.day}, {d.year}", f"{month[:3]} {d.day}",
            f"{d.day} {month} {d.year}", f"{month} {d.year}", f"{d.year}-{d.month:02d}", str(d.year),
            f"{d.month}/{d.day}/{d.year}"]


_norm_number = canonical_number


def _numbers(text: str) -> set[str]:
    return {_norm_number(n) for n in numbers(text)}


def _stem_set(text: str) -> set[str]:
    toks = [re.sub(r"['’]s$", "", w) for w in content_words(text)]
    return set(stems([t for t in toks if t]))


def _content_count(text: str) -> int:
    return len([w for w in content_words(text) if w])


def _has_name(name: str, haystack_lower: str) -> bool:
    pat = r"(?<![a-z0-9])" + re.escape(name.lower()) + r"(?:['’]s)?(?![a-z0-9])"
    return re.search(pat, haystack_lower) is not None


def parse_markers(group: str) -> list[int]:
    """"1, 2" -> [1, 2]; "1-3" -> [1, 2, 3]; "Source 4" -> [4]."""
    out: list[int] = []
    g = re.sub(r"(?i)sources?", "", group)
    for part in re.split(r"\s*(?:[,;]|and)\s*", g):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*[-–]\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if 0 < b - a <= 20:
                out.extend(range(a, b + 1))
            else:
                out.extend([a, b])
        elif part.isdigit():
            out.append(int(part))
    return out


def extract_markers(sentence: str) -> tuple[str, list[int]]:
    """The sentence without its [n] markers, and the markers in order of appearance (no duplicates)."""
    found: list[int] = []
    for m in _MARKER.finditer(sentence):
        for n in parse_markers(m.group(1)):
            if n not in found:
                found.append(n)
    clean = _MARKER.sub(" ", sentence)
    clean = re.sub(r"\s+([.,;:!?…])", r"\1", clean)
    return normalize_space(clean), found


def _strip_markdown(s: str) -> str:
    return normalize_space(_MD_EMPH.sub("", s))


def _quote_key(sentence: str) -> str:
    """A sentence as `verify_answer` checks it (no markers, no emphasis, single spaces), so a source
    sentence and its copy in an answer compare equal."""
    return _strip_markdown(extract_markers(sentence)[0])


# Words a lead like "On May 3, 2025, TechCrunch reported:" adds besides the story's date and outlet. No
# other word may lead a copied sentence: "not", "never", "but rarely" would turn a quote into a new claim.
_ATTRIBUTION = frozenset({"on", "in", "reported", "reports", "according", "to", "wrote", "writes", "said", "says"})


def _quoted(check_text: str, view: _SourceView) -> int | None:
    """The index of the source sentence `check_text` copies word for word, or None.

    A copied sentence is supported by construction, so it needs no embedding: this is what makes
    extractive answers cheap to verify. A copy may be led by when and by whom it was reported
    ("On May 3, 2025, TechCrunch reported: ...", "2025-05-03 (TechCrunch): ..."); any other lead
    word could change the claim, so such a sentence goes through the full check instead.
    """
    j = view.quotes.get(check_text)
    if j is not None:
        return j
    for key, j in view.quotes.items():
        if len(key) < len(check_text) and check_text.endswith(key) and check_text[-len(key) - 1] == " ":
            lead = check_text[:-len(key)]
            if all(w in view.attribution for w in words(lead)):
                return j
    return None


def _with_markers(sentence: str, cited: list[int]) -> str:
    if not cited:
        return sentence
    marks = "".join(f"[{n}]" for n in cited)
    m = re.search(r"([.!?…][\"'”’)]*)$", sentence)
    if m and not re.search(r"\b(?:[A-Z]\.|U\.S\.|etc\.)$", sentence):
        return f"{sentence[:m.start()]} {marks}{m.group(1)}"
    return f"{sentence} {marks}"


# --------------------------------------------------------------------------- source-side preparation

class _SourceView:
    """What one source offers a sentence: its sentences, stems, numbers and lower-cased full text."""

    __slots__ = ("sentences", "n_body", "stems", "numbers", "lower", "sent_stems", "quotes", "attribution",
                 "names")

    def __init__(self, src: Source):
        meta = [src.title, *src.outlets, *date_forms(src.published_at)]
        body = split_sentences(src.text) or ([src.text] if src.text.strip() else [])
        # a sentence written as an instruction to an AI supports nothing (rag.untrusted): it is not there
        body = [s for s in body if not is_instruction_like(s)]
        self.n_body = len(body)          # sentences[n_body:] is the title: scored, never quoted as a snippet
        self.sentences = body + ([src.title] if src.title.strip() and not is_instruction_like(src.title) else [])
        full = " \n".join([*body, *meta])
        self.lower = full.lower()
        self.stems = _stem_set(full)
        nums = _numbers(full)
        nums |= {_NUMBER_WORDS[w.lower()] for w in _NUMBER_WORD_RE.findall(full)}
        self.numbers = nums
        self.sent_stems = [_stem_set(s) for s in self.sentences]
        # each sentence in the form an answer sentence takes once its markers are stripped -> its index
        self.quotes: dict[str, int] = {}
        for j, sent in enumerate(self.sentences):
            self.quotes.setdefault(_quote_key(sent), j)
        # the words a lead may add to a quoted sentence: when and by whom it was reported
        self.attribution = set(words(" ".join([*src.outlets, *date_forms(src.published_at)]))) | _ATTRIBUTION
        self.names = names(" ".join(body))


class _VectorCache:
    """A small thread-safe LRU: source-sentence vectors per (embedder, chunk, text), parsed sources per chunk."""

    def __init__(self, maxsize: int = 4096):
        self.maxsize = maxsize
        self._d: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key, value) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.maxsize:
                self._d.popitem(last=False)


_VECTORS = _VectorCache()
_VIEWS = _VectorCache(maxsize=2048)


def _view(src: Source) -> _SourceView:
    key = (src.chunk_id, hash((src.title, src.text, tuple(src.outlets), src.published_at)))
    v = _VIEWS.get(key)
    if v is None:
        v = _SourceView(src)
        _VIEWS.put(key, v)
    return v


def _source_key(embedder, src: Source, sentences: list[str]) -> tuple:
    return (getattr(embedder, "path", None) or id(embedder), src.chunk_id, hash(tuple(sentences)))


def _source_vectors(embedder, srcs: list[Source], views: list[_SourceView]) -> list[np.ndarray | None]:
    if embedder is None:
        return [None] * len(srcs)
    out: list[np.ndarray | None] = [None] * len(srcs)
    missing: list[int] = []
    for i, (s, v) in enumerate(zip(srcs, views)):
        vec = _VECTORS.get(_source_key(embedder, s, v.sentences))
        if vec is None:
            missing.append(i)
        else:
            out[i] = vec
    if missing:
        texts = [t for i in missing for t in views[i].sentences]
        vecs = embedder.embed(texts) if texts else np.zeros((0, 1), dtype=np.float32)
        pos = 0
        for i in missing:
            k = len(views[i].sentences)
            out[i] = vecs[pos:pos + k]
            pos += k
            _VECTORS.put(_source_key(embedder, srcs[i], views[i].sentences), out[i])
    return out


# -------------------------------------------------------------------------------------- the checks

@dataclass
class _Unit:
    """One answer sentence in place: which line it sits on, with what prefix, and its markers."""
    line: int
    raw: str
    clean: str
    markers: list[int]
    check_text: str = ""
    counted: bool = True
    abstain: bool = False
    question: bool = False


@dataclass
class _Fit:
    supported: bool
    score: float
    lexical: float
    semantic: float
    missing_numbers: list[str]
    missing_names: list[str]
    best_sentences: list[int]


def _sentence_names(text: str, known: set[str]) -> set[str]:
    out = set(names(text))
    m = re.match(r"[\"'“‘(]*([A-Z][A-Za-z0-9&\-]*)", text)
    if m:
        w = m.group(1)
        lw = w.lower()
        if lw not in STOPWORDS and lw not in _MONTH_WORDS and len(w) > 1 and (
                re.search(r"[A-Z0-9]", w[1:]) or lw in known):
            out.add(lw)
    return out


def _fit(sent: str, sent_stems: set[str], sent_nums: set[str], sent_names: set[str], view: _SourceView,
         sims: np.ndarray | None, threshold: float, quoted: int | None = None) -> _Fit:
    """How well `view` supports `sent`. `quoted`: the index of the source sentence that `sent` copies
    (see `_quoted`); a copy scores 1.0 and its snippet is the copied sentence, but its numbers and
    names are checked like any other sentence's, so a lead that names the wrong date or outlet fails."""
    low = sent.lower()
    missing_numbers = sorted((n for n in sent_nums if n not in view.numbers), key=lambda n: (low.find(n), n))
    missing_names = sorted((n for n in sent_names if not _has_name(n, view.lower)), key=lambda n: (low.find(n), n))
    if quoted is not None:
        return _Fit(not missing_numbers and not missing_names and 1.0 >= threshold, 1.0, 1.0, 1.0,
                    missing_numbers, missing_names, [quoted])
    lexical = len(sent_stems & view.stems) / len(sent_stems) if sent_stems else 1.0
    if sims is not None and sims.size:
        semantic = float(max(0.0, sims.max()))
    else:
        semantic = lexical
    score = LEXICAL_WEIGHT * lexical + (1 - LEXICAL_WEIGHT) * semantic
    # Supporting span: the source sentence that best matches, plus those that carry facts it lacks.
    per = []
    for j in range(view.n_body):
        ss = view.sent_stems[j]
        cov = len(sent_stems & ss) / len(sent_stems) if sent_stems else 0.0
        cos = float(sims[j]) if sims is not None and sims.size else cov
        per.append(0.5 * cov + 0.5 * cos)
    best: list[int] = []
    if per:
        order = sorted(range(len(per)), key=lambda j: -per[j])
        best = [order[0]]
        covered = set(view.sent_stems[order[0]])
        # facts the best sentence lacks pull in the sentence that has them -- unless the title (shown
        # with every citation) already carries them, e.g. the company a whole story is about
        title_low = " ".join(view.sentences[view.n_body:]).lower()
        need_facts = [f for f in list(sent_nums) + list(sent_names) if f not in title_low]
        for j in order[1:]:
            if len(best) >= 3:
                break
            text_j = view.sentences[j].lower()
            adds_fact = any(f not in " ".join(view.sentences[b].lower() for b in best) and f in text_j
                            for f in need_facts)
            adds_words = len((sent_stems & view.sent_stems[j]) - covered) >= 2
            if adds_fact or (adds_words and per[j] > 0.5 * per[order[0]]):
                best.append(j)
                covered |= view.sent_stems[j]
    supported = not missing_numbers and not missing_names and score >= threshold
    return _Fit(supported, score, lexical, semantic, missing_numbers, missing_names, best)


def _snippet(view: _SourceView, idx: list[int]) -> str:
    """The supporting span in source order; the title when the chunk has no text of its own."""
    span = " ".join(view.sentences[j] for j in sorted(idx) if j < view.n_body)
    return span or " ".join(view.sentences[view.n_body:])


def _why(fit: _Fit, n: int) -> str:
    if fit.missing_numbers:
        return f"number {fit.missing_numbers[0]} not in [{n}]"
    if fit.missing_names:
        return f"name {fit.missing_names[0]} not in [{n}]"
    return f"low support {fit.score:.2f} in [{n}]"


def _split_units(text: str) -> tuple[list[str], list[tuple[str, list[_Unit]] | None]]:
    """Lines of the answer; for each checkable line its list prefix and sentences."""
    lines = (text or "").replace("\r\n", "\n").split("\n")
    parsed: list[tuple[str, list[_Unit]] | None] = []
    last: _Unit | None = None
    for li, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(HEADING_PREFIXES) or re.fullmatch(r"[-*_=]{3,}", stripped):
            parsed.append(None)
            continue
        m = _LIST_PREFIX.match(line)
        prefix = m.group(1) if m else ""
        body = line[len(prefix):] if m else line.strip()
        body = _MARKER_AFTER_PUNCT.sub(lambda mm: f" {mm.group(2).strip()}{mm.group(1)}", body)
        units: list[_Unit] = []
        for raw in split_sentences(body):
            clean, markers = extract_markers(raw)
            if not clean.strip(" .,:;-"):
                # a sentence (or line) that was only markers: they belong to the sentence before it
                if last is not None:
                    last.markers += [n for n in markers if n not in last.markers]
                continue
            last = _Unit(li, raw, clean, markers)
            units.append(last)
        parsed.append((prefix, units))
    return lines, parsed


def verify_answer(text: str, sources: list[Source], *, embedder, threshold: float,
                  strict: bool = False) -> Verification:
    """Check, repair and score the [n] citations of `text` against `sources` ([1] = sources[0])."""
    lines, parsed = _split_units(text)
    units = [u for p in parsed if p for u in p[1]]
    views = [_view(s) for s in sources]
    known = set()
    for v in views:
        known |= v.names               # not the title: a Title Case headline would make every word a "name"
    for u in units:
        u.check_text = _strip_markdown(u.clean)
        known |= names(u.check_text)

    sent_info = []
    for u in units:
        t = u.check_text
        sn_stems, sn_nums, sn_names = _stem_set(t), _numbers(t), _sentence_names(t, known)
        u.question = bool(re.search(r"\?[\"'”’)]*$", t))   # a question (often the user's, echoed) claims nothing
        u.abstain = not u.markers and bool(_ABSTAIN.search(t))
        u.counted = not (u.abstain or u.question) and (
            _content_count(t) >= MIN_CONTENT_WORDS or bool(sn_nums) or bool(sn_names))
        sent_info.append((sn_stems, sn_nums, sn_names))

    n_src = len(sources)
    quotes = [[_quoted(u.check_text, v) for v in views] for u in units]

    def quoted_fits(i: int) -> list[_Fit | None] | None:
        """Fits to the cited sources when every one of them is copied by sentence i and holds its
        facts -- all that sentence needs -- else None: it needs the full check against every source."""
        u = units[i]
        valid = [n for n in u.markers if 1 <= n <= n_src]
        if u.question or u.abstain:
            return [None] * n_src          # claims nothing: its markers are removed, no fit is read
        if not valid or any(quotes[i][n - 1] is None for n in valid):
            return None
        out: list[_Fit | None] = [None] * n_src
        for n in valid:
            out[n - 1] = _fit(u.check_text, *sent_info[i], views[n - 1], None, threshold, quotes[i][n - 1])
            if not out[n - 1].supported:
                return None
        return out

    resolved = [quoted_fits(i) for i in range(len(units))]
    # Similarities, only for sentences that are not copies: one batch for those answer sentences, one
    # (cached per chunk) for the sources.
    need = [i for i, r in enumerate(resolved) if r is None]
    src_vecs: list[np.ndarray | None] = [None] * n_src
    ans_vecs: dict[int, np.ndarray] = {}
    if embedder is not None and need and n_src:
        src_vecs = _source_vectors(embedder, sources, views)
        uniq = list(dict.fromkeys(units[i].check_text for i in need))
        vecs = embedder.embed(uniq)
        pos = {t: j for j, t in enumerate(uniq)}
        ans_vecs = {i: vecs[pos[units[i].check_text]] for i in need}

    def fits_for(i: int) -> list[_Fit]:
        if resolved[i] is not None:
            return resolved[i]
        out = []
        for k, view in enumerate(views):
            sims = None
            if i in ans_vecs and src_vecs[k] is not None and len(src_vecs[k]):
                sims = src_vecs[k] @ ans_vecs[i]
            out.append(_fit(units[i].check_text, *sent_info[i], view, sims, threshold, quotes[i][k]))
        return out

    checks: list[SentenceCheck] = []
    flags: list[str] = []
    counters = {"removed": 0, "moved": 0, "added": 0, "dropped": 0, "unsupported": 0}
    for i, u in enumerate(units):
        reasons: list[str] = []
        valid = []
        for n in u.markers:
            if 1 <= n <= n_src:
                valid.append(n)
            else:
                reasons.append(f"marker [{n}] points to no source")
                counters["removed"] += 1
        fits = fits_for(i) if sources else []
        final: list[int] = []
        supported = False
        score = 0.0
        snippets: dict[int, str] = {}

        if not u.counted:
            # connective, question or "the sources do not say": keep markers only where they hold
            final = [] if u.question else [n for n in valid if fits[n - 1].supported]
            if u.question:
                reasons.append("a question, not a claim")
            elif u.abstain:
                reasons.append("states the sources do not answer")
            else:
                reasons.append("not checked (connective)")
            for n in final:
                snippets[n] = _snippet(views[n - 1], fits[n - 1].best_sentences)
            checks.append(SentenceCheck(u.clean, final, True, max((fits[n - 1].score for n in final), default=0.0),
                                        "; ".join(reasons), counted=False, snippets=snippets))
            u.markers = final
            continue

        ok = [n for n in valid if fits[n - 1].supported]
        bad = [n for n in valid if n not in ok]
        combined = False
        if not ok and len(valid) >= 2:
            # a sentence that merges facts from several cited sources: check them together
            sn_stems, sn_nums, sn_names = sent_info[i]
            union_nums = set().union(*(views[n - 1].numbers for n in valid))
            union_lower = " \n".join(views[n - 1].lower for n in valid)
            union_stems = set().union(*(views[n - 1].stems for n in valid))
            lex = len(sn_stems & union_stems) / len(sn_stems) if sn_stems else 1.0
            sem = max(fits[n - 1].semantic for n in valid)
            sc = LEXICAL_WEIGHT * lex + (1 - LEXICAL_WEIGHT) * sem
            if (sn_nums <= union_nums and all(_has_name(x, union_lower) for x in sn_names) and sc >= threshold):
                contributing = []
                for n in valid:
                    v = views[n - 1]
                    own = (any(x in v.numbers for x in sn_nums) or any(_has_name(x, v.lower) for x in sn_names)
                           or fits[n - 1].score >= threshold)
                    if own:
                        contributing.append(n)
                if len(contributing) >= 2:
                    ok, bad, combined = contributing, [n for n in valid if n not in contributing], True
                    score = sc
        final = list(ok)
        for n in bad:
            candidates = [k for k in range(1, n_src + 1) if k not in final and fits[k - 1].supported]
            if candidates:
                best = max(candidates, key=lambda k: fits[k - 1].score)
                final.append(best)
                reasons.append(f"moved [{n}]->[{best}]")
                counters["moved"] += 1
            else:
                if final:
                    reasons.append(f"dropped [{n}] ({_why(fits[n - 1], n)})")
                else:
                    reasons.append(_why(fits[n - 1], n))
                counters["dropped"] += 1
        if not valid:
            candidates = [k for k in range(1, n_src + 1) if fits[k - 1].supported]
            if candidates:
                best = max(candidates, key=lambda k: fits[k - 1].score)
                final.append(best)
                reasons.append(f"added [{best}]")
                counters["added"] += 1
        supported = bool(final)
        if supported:
            if not combined:
                score = max(fits[n - 1].score for n in final)
            for n in final:
                snippets[n] = _snippet(views[n - 1], fits[n - 1].best_sentences)
            if not reasons or all(r.startswith("marker [") for r in reasons):
                reasons.insert(0, "ok" if not combined else "ok (combined)")
            elif combined:
                reasons.insert(0, "ok (combined)")
        else:
            score = max((f.score for f in fits), default=0.0)
            if not valid:
                if fits:
                    best = max(range(n_src), key=lambda k: fits[k].score)
                    reasons.append(f"no support (closest: {_why(fits[best], best + 1)})")
                else:
                    reasons.append("no support (no sources)")
            else:
                reasons.insert(len([r for r in reasons if r.startswith('marker [')]), "no support")
            counters["unsupported"] += 1
        u.markers = final
        checks.append(SentenceCheck(u.clean, final, supported, round(float(score), 4), "; ".join(reasons),
                                    counted=True, snippets=snippets))

    # Rebuild the text line by line, in place.
    out_lines: list[str] = []
    ci = 0
    for li, p in enumerate(parsed):
        if p is None:
            out_lines.append(lines[li])
            continue
        prefix, line_units = p
        kept: list[str] = []
        for u in line_units:
            chk = checks[ci]
            ci += 1
            if strict and chk.counted and not chk.supported:
                continue
            kept.append(_with_markers(u.clean, u.markers))
        if kept:
            out_lines.append(prefix + " ".join(kept))
        # a line left empty (all dropped in strict mode, or markers only, now moved up) disappears
    new_text = "\n".join(out_lines)
    new_text = re.sub(r"\n{3,}", "\n\n", new_text).strip()

    # One citation per source number actually used, from the first sentence that cites it.
    citations: list[Citation] = []
    seen: set[int] = set()
    for chk in checks:
        if strict and chk.counted and not chk.supported:
            continue
        for n in chk.cited:
            if n in seen:
                continue
            seen.add(n)
            s = sources[n - 1]
            citations.append(Citation(n=n, story_id=s.story_id, title=s.title, outlet=s.outlet, url=s.url,
                                      published_at=s.published_at, snippet=chk.snippets.get(n, ""),
                                      sentence=chk.sentence, support=chk.score))
    citations.sort(key=lambda c: c.n)

    counted = [c for c in checks if c.counted]
    ratio = (sum(c.supported for c in counted) / len(counted)) if counted else 0.0
    unsupported = [c.sentence for c in counted if not c.supported]
    # (the count of unsupported sentences is `len(unsupported)`; the pipeline flags it)
    for key in ("moved", "added", "removed", "dropped"):
        if counters[key]:
            flags.append(f"{key}:{counters[key]}" if key != "removed" else f"removed-marker:{counters[key]}")
    if strict and unsupported:
        flags.append(f"strict-dropped:{len(unsupported)}")
    if not counted:
        flags.append("nothing-checked")
    if any(not c.counted and "do not answer" in c.reason for c in checks):
        flags.append("abstained")
    return Verification(new_text, checks, citations, round(ratio, 4), unsupported, flags)
