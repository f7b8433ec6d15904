"""Turn a chat follow-up ("And AMD?", "When was it released?") into a question retrieval can answer alone.

Retrieval sees one question at a time, so an elliptical turn must carry its subject with it. This is done
without an LLM so it is instant, offline and testable, with rules simple enough to predict:

Which turn is the context. `history` holds (question, answer) pairs, oldest first. The context for a new
message is the *standalone* form of the last question: the history is replayed oldest first, each
follow-up rewritten against the standalone question before it. So in "What did Nvidia announce last
month?" -> "And AMD?" -> "What about Intel?", the third turn sees "What did AMD announce last month?" and
becomes "What did Intel announce last month?". The assistant's answer is only a fallback source of a
subject, for when the previous question named none ("Who released the best open model?").

When a message is a follow-up (`is_followup`): there is history, and the message
- opens with a continuation cue: "and", "but", "also", "what/how about", "what of", "same for",
  "tell me more", "more on" - or "compare" while naming fewer than two things of its own;
- or refers back with a pronoun or "the company"/"this model" and names nothing itself, or has a pronoun
  as its subject ("What did he say about GPT-5?");
- or is short (under four content words) and either a fragment naming something ("AMD?") or, naming
  nothing, leans on context: a definite "the price", or a single word like "Why?"/"Who won?".
A short question that brings its own subject or scope stays self-contained: "What is Qwen3-Next?",
"What is quantization?", "What happened last week?", "What's new?".

How it is rewritten (`rewrite_followup`), first rule that applies:
1. It names new entities and nothing else ("And AMD?", "What about AMD and Intel?"): the previous
   question with its main entity (its first name) replaced - "compare" adds instead ("Nvidia and AMD").
   The previous time phrase stays unless the follow-up brings its own. If the previous question named
   nothing, the new names are appended in parentheses.
2. It names only a time ("And last year?"): the previous question with its time phrase swapped.
3. It refers back with a pronoun: "it/its/the model" become the previous question's last name (products
   follow their makers: "Alibaba's Qwen3-Next"), "he/she/the company" its first, "they/their" all names
   when there are several (with one name "they" more likely means the things asked about: rule 5).
   The previous time phrase is carried over unless the message has its own or asks "when".
4. It names its own entity with its own topic ("What about AMD's revenue?"): kept, time carried over.
5. Anything else ("Why?", "What about pricing?", "When did that happen?"): the message with the previous
   question's topic appended in parentheses, e.g. "Why? (Nvidia's latest AI chips last month)".
Entities are capitalised or digit-bearing names ("Qwen3-Next-80B-A3B", "GPT-5", "H200", "Nvidia's");
question words, generic acronyms (AI, CEO, GPU) and time words never are.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from rag.text import STOPWORDS, content_words, normalize_space, split_sentences, words
from rag.timeparse import find_time_phrases, has_recency


@dataclass(frozen=True)
class _Reading:
    """One message taken apart: its opening cue, what it names, and what else it is about."""
    text: str                     # normalised message
    cue: str | None               # "conj", "about", "compare" or None
    body: str                     # the message after its cue
    cue_end: int                  # where the body starts in `text`
    entities: tuple[str, ...]             # names in `body`, without a possessive "'s"
    topic: tuple[str, ...]                # content words of body that are neither names nor time
    time: str | None                      # the body's time phrase(s), as written
    anaphors: tuple[re.Match, ...]        # back-references in `text`


_CUE = re.compile(
    r"^(?:(?P<conj>and|but|also|so|plus|then|ok(?:ay)?)\b[\s,]*)?"
    r"(?:(?P<about>(?:what|how)\s+about|what\s+of|same\s+(?:question\s+)?(?:for|with|goes\s+for)|"
    r"tell\s+me\s+more(?:\s+(?:about|on))?|more\s+(?:on|about)|what\s+else(?:\s+about)?)\b"
    r"|(?P<compare>compare(?:\s+(?:that|this|it|them|those))?(?:\s+(?:with|to|against|versus|vs\.?))?)(?!\w))?",
    re.I)
# Back-references; the descriptive ones ("the company") count as one unit.
_ANAPHOR = re.compile(
    r"\b(?:(?P<desc>(?:the|this|that)\s+(?P<noun>company|firm|startup|lab|model|chip|product|tool|system))"
    r"|(?P<sing>it|its|itself)|(?P<person>he|she|him|his|her|hers)|(?P<plural>they|them|their|theirs)"
    r"|(?P<demo>that|this|those|these))\b", re.I)
_PRODUCT_NOUNS = {"model", "chip", "product", "tool", "system"}
# A pronoun as the subject ("What did he say about GPT-5?") leans back even when other names follow;
# "is it true/possible..." is the empty "it" of English, not a reference.
_SUBJECT_ANAPHOR = re.compile(
    r"^(?:(?:and|but|so|also)\s+)?(?:(?:what|when|where|why|how|who|which)(?:\s+\w+)?\s+)?"
    r"(?:(?:did|does|do|is|was|were|are|has|have|had|will|would|can|could|should)\s+)?"
    r"(?:he|she|they|its|his|her|their|it(?!\s+(?:true|possible|likely|worth|fair|safe|correct|right|wrong|"
    r"the\s+case)\b))\b", re.I)
_POSSESSIVE = re.compile(r"['’]s$")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9&+\-/]*(?:\.[A-Za-z0-9]+)*(?P<pos>['’]s\b)?")
_SIZE = re.compile(r"^\d+(?:\.\d+)?[a-z]{1,2}$|^[qh][1-4]$|^\d+(?:st|nd|rd|th)$", re.I)
_NUMERIC = re.compile(r"^\d+(?:\.\d+)?[a-z]{0,2}$", re.I)
# Capitalised at the start of a message but not names: verbs of a request, generic acronyms, months.
_NOT_NAMES = frozenset("""compare give show list explain summarize summarise describe define find please
thanks thank ok okay yes hey hi hello really whose anything anyone everything something also same more
ceo cto cfo coo ai agi asi ml llm llms gpu gpus cpu cpus api apis ipo sdk faq us usd eu gdpr
january february march april may june july august september october november december jan feb mar apr
jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday saturday sunday""".split())
# Sentence-initial capitalised words that are ordinary nouns, not names ("Pricing?", "Benchmarks?").
_COMMON_SUFFIX = re.compile(r"(?:ing|tion|sion|ment|ness|ity|ance|ence|ics|ure|age|ship|ism|ize|ise)$", re.I)
_COMMON_NOUNS = frozenset("""price prices cost costs details benchmarks benchmark specs release releases date
revenue sales results funding valuation sources source why more context size speed license weights
parameters reaction reactions impact""".split())
_QUESTION_START = frozenset("""what what's whats when who who's whom whose where why how which is are was were
do does did can could will would should has have had tell show list give summarize summarise explain
describe define find compare name any anything please i am""".split())
_DEFINITIONAL = re.compile(r"^(?:what\s+(?:is|are)|what['’]?s|who\s+(?:is|are)|define|explain|describe)\s+"
                           r"(?!(?:the|this|that|these|those|it|its|they|them|their)\b)\w", re.I)
_DEFINITE = re.compile(r"\bthe\s+(?!(?:\w+est|top|best|most|main|major|key|first|last|next|same|other|whole|"
                       r"entire|news|world|industry|field|market|sector|public|future|past)\b)\w+", re.I)
# Words that make a short question a general news request rather than an ellipsis.
_NEWS_NOUNS = frozenset("news stories story headlines developments announcements".split())
_GENERIC = _NEWS_NOUNS | frozenset("""happened happen happening going biggest top best major main key important
notable interesting hottest trending""".split())
_CUE_WORDS = frozenset("compare versus vs too well instead else either".split())
_WHEN = re.compile(r"^\s*(?:and\s+)?(?:when|what\s+(?:day|date|time|year|month))\b", re.I)
_END_PUNCT = re.compile(r"[\s?!.]*$")


# ---------------------------------------------------------------------------------------------- reading

def _blank(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """Time words blanked out in place, so offsets into the original still hold."""
    chars = list(text)
    for s, e in spans:
        chars[s:e] = " " * (e - s)
    return "".join(chars)


def _initial(text: str, pos: int) -> bool:
    before = text[:pos].rstrip()
    return not before or before[-1] in ".!?:;\"“("


def _nameish(token: str, initial: bool) -> bool:
    low = token.lower()
    if low in STOPWORDS or low in _NOT_NAMES or _SIZE.match(token) or not any(c.isalpha() for c in token):
        return False
    if any(c.isdigit() for c in token) or any(c.isupper() for c in token[1:]):
        return True                                   # GPT-5, H200, DeepSeek, AMD, gpt-4o
    if not token[0].isupper():
        return False
    return not initial or not (_COMMON_SUFFIX.search(low) or low in _COMMON_NOUNS)


def _entities(text: str) -> list[str]:
    """Runs of name tokens ("Google DeepMind", "Claude Opus 4.1"); a possessive ends a run."""
    out: list[str] = []
    run: list[re.Match] = []

    def close() -> None:
        if run:
            s, e = run[0].start(), run[-1].start("pos") if run[-1]["pos"] else run[-1].end()
            out.append(text[s:e])
            run.clear()

    for m in _TOKEN.finditer(text):
        core = m.group(0)[: m.start("pos") - m.start()] if m["pos"] else m.group(0)
        adjacent = bool(run) and text[run[-1].end():m.start()].strip() == "" and not run[-1]["pos"]
        if _nameish(core, _initial(text, m.start())):
            if not adjacent:
                close()
            run.append(m)
        elif adjacent and _NUMERIC.match(core):
            run.append(m)                             # "Llama 4", "Claude Opus 4.1", "Qwen3 80B"
        else:
            close()
            continue
        if m["pos"]:
            close()
    close()
    return out


def _read(message: str) -> _Reading:
    text = normalize_space(message).lstrip(" ,.;:-")
    spans = find_time_phrases(text)
    blanked = _blank(text, spans)
    cue_m = _CUE.match(text)
    cue = None
    if cue_m.group(0).strip():
        cue = "compare" if cue_m["compare"] else "about" if cue_m["about"] else "conj"
    offset = cue_m.end() if cue else 0
    body, blanked_body = text[offset:], blanked[offset:]
    ents = _entities(blanked_body)
    name_words = {w for e in ents for w in words(e)}
    topic = tuple(w for w in (_POSSESSIVE.sub("", w) for w in content_words(blanked_body))
                  if w not in name_words and w not in _CUE_WORDS)
    time = " ".join(text[s:e] for s, e in spans if s >= offset) or None
    return _Reading(text, cue, body.strip(), offset, tuple(ents), topic, time, tuple(_ANAPHOR.finditer(blanked)))


def _leans(r: _Reading) -> bool:
    if not r.text:
        return False
    if r.cue == "compare":
        return len(r.entities) < 2
    if r.cue:
        return True
    if r.anaphors and (not r.entities or _SUBJECT_ANAPHOR.match(r.text)):
        return True
    if len(r.topic) >= 4:
        return False
    first = words(r.text)[:1]
    starts_question = bool(first) and first[0] in _QUESTION_START
    if r.entities:
        return not starts_question                   # "AMD?", "Anthropic too?"
    if set(r.topic) <= _GENERIC and (r.time or _NEWS_NOUNS & set(r.topic)):
        return False                                 # "What happened last week?", "Top stories?"
    if _DEFINITE.search(r.body):
        return True                                  # "What is the price?"
    if r.time or has_recency(r.text):
        return False                                 # "What's new?", "Latest models?"
    if not starts_question or len(r.topic) <= 1:
        return not _DEFINITIONAL.match(r.text)       # "Why?", "Who won?", "Pricing?" - not "What is RAG?"
    return False


def is_followup(message: str, history: Sequence[tuple[str, str]]) -> bool:
    """Whether a message leans on the conversation so far (rules in the module docstring)."""
    return bool(history) and _leans(_read(message))


# ---------------------------------------------------------------------------------------------- rewriting

def _tidy(text: str) -> str:
    text = normalize_space(text)
    text = re.sub(r"\s+([,.;:?!)])", r"\1", text)
    text = re.sub(r"\(\s+", "(", text)
    if re.match(r"[a-z]+(?![\w\-])", text):         # "when was..." but never "iPhone", "gpt-5"
        text = text[0].upper() + text[1:]
    return text


def _insert_before_end(text: str, addition: str) -> str:
    end = _END_PUNCT.search(text).start()
    return f"{text[:end]} {addition}{text[end:]}"


def _swap_time(question: str, new_time: str) -> str:
    spans = find_time_phrases(question)
    if not spans:
        return _tidy(_insert_before_end(question, new_time))
    out, last = [], 0
    for i, (s, e) in enumerate(spans):
        out.append(question[last:s])
        out.append(new_time if i == 0 else "")
        last = e
    out.append(question[last:])
    return _tidy("".join(out))


def _time_of(question: str) -> str | None:
    return " ".join(question[s:e] for s, e in find_time_phrases(question)) or None


def _replace_entity(question: str, old: str, new: str) -> str:
    pattern = re.compile(r"(?<![\w\-])" + re.escape(old) + r"(?![\w\-])")
    return _tidy(pattern.sub(lambda _: new, question))


def _topic_of(question: str) -> str:
    """The previous question minus its question words: what a parenthesis carries into a follow-up."""
    q = _END_PUNCT.sub("", normalize_space(question))
    for m in _TOKEN.finditer(q):
        word = (m.group(0)[: m.start("pos") - m.start()] if m["pos"] else m.group(0)).lower()
        if word not in STOPWORDS and word not in _QUESTION_START:
            return q[m.start():]
    return q


def _names_of(question: str, answer: str) -> list[str]:
    ents = _entities(_blank(question, find_time_phrases(question)))
    if ents or not answer:
        return ents
    first = (split_sentences(answer) or [""])[0]
    return _entities(re.sub(r"\[\d+\]", " ", first))


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _resolve_anaphors(r: _Reading, names: list[str]) -> str | None:
    """Pronouns replaced by the names they most likely point at; None when none could be resolved."""
    if not names:
        return None
    first, last = names[0], names[-1]
    everyone = _join(names) if len(names) > 1 else None
    changed = False

    def sub(m: re.Match) -> str:
        nonlocal changed
        word = m.group(0).lower()
        if m["desc"]:
            name = last if m["noun"].lower() in _PRODUCT_NOUNS else first
        elif m["sing"]:
            name = last
        elif m["person"]:
            name = first
        elif m["plural"] and everyone:
            name = everyone
        else:
            return m.group(0)                        # "that", lone "they": the topic is appended instead
        changed = True
        possessive = word in ("its", "his", "their", "theirs", "hers") or (
            word == "her" and re.match(r"\s+[a-z]", r.text[m.end():]) is not None
            and not re.match(r"\s+(?:about|with|to|for|from|in|on|at|by|of|and|or|that)\b", r.text[m.end():]))
        return name + "'s" if possessive else name

    out = _ANAPHOR.sub(sub, r.text)
    return _tidy(out) if changed else None


def _drop_conjunction(text: str) -> str:
    """ "And when was it released?" stands on its own once the "And" has gone."""
    m = _CUE.match(text)
    return _tidy(text[m.end():]) if m["conj"] and not (m["about"] or m["compare"]) else text


def _resolve(message: str, context: str, answer: str) -> str:
    r = _read(message)
    names = _names_of(context, answer)
    own_names = list(r.entities)
    prev_time = _time_of(context)
    q_names = _entities(_blank(context, find_time_phrases(context)))

    refers_back = any(m.start() >= r.cue_end and not m["demo"] for m in r.anaphors)
    if own_names and not r.topic and not refers_back:                   # rule 1
        base = _swap_time(context, r.time) if r.time else context
        if not q_names:
            return _tidy(f"{base} ({_join(own_names)})")
        main = _entities(_blank(base, find_time_phrases(base)))[0]
        new = _join(([main] if r.cue == "compare" else []) + own_names)
        return _replace_entity(base, main, new)
    if not own_names and not r.topic and r.time:                        # rule 2
        return _swap_time(context, r.time)
    resolved = _resolve_anaphors(r, names)                              # rule 3
    if resolved is None and own_names and r.cue != "compare":           # rule 4
        resolved = r.text
    if resolved is not None:
        if prev_time and not r.time and not _WHEN.match(r.text):
            resolved = _insert_before_end(resolved, prev_time)
        return _drop_conjunction(_tidy(resolved))
    return _tidy(f"{r.text} ({_topic_of(context)})")                    # rule 5


def _standalone_context(history: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """The last question made standalone by replaying the conversation, with the answer it got."""
    question, answer = history[0]
    for next_question, next_answer in history[1:]:
        question = _resolve(next_question, question, answer) if _leans(_read(next_question)) else next_question
        answer = next_answer
    return question, answer


def rewrite_followup(message: str, history: Sequence[tuple[str, str]]) -> str:
    """A standalone version of `message` for retrieval; unchanged when it is not a follow-up."""
    if not is_followup(message, history):
        return message
    context, answer = _standalone_context(history)
    return _resolve(message, context, answer)


# ------------------------------------------------------------------------------------- an LLM's rewrite

_LABEL = re.compile(r"^\s*(?:standalone\s+question|rewritten\s+question|question|search\s+query|query)\s*:\s*", re.I)
MAX_CONDENSED_CHARS = 300


def accept_condensed(candidate: str, message: str, history: Sequence[tuple[str, str]]) -> str | None:
    """An LLM's standalone rewrite of `message`, cleaned, or None when it cannot be trusted.

    A small model asked to rewrite "And AMD?" may answer the question instead, drop "AMD", or bring in a
    subject nobody mentioned; retrieval would then search for the wrong thing with full confidence. So the
    rewrite must be one short question that keeps the message's own names and time phrase and takes
    (nearly) all of its words from the conversation itself. Anything else falls back to the rules above."""
    lines = [ln for ln in (candidate or "").strip().splitlines() if ln.strip()]
    if not lines:
        return None
    text = _LABEL.sub("", lines[0]).strip().strip("\"'“”‘’`").strip()
    if not text or len(text) > MAX_CONDENSED_CHARS or re.search(r"\[\d+\]", text):
        return None
    if len(split_sentences(text)) > 1:
        return None
    low = text.lower()
    r = _read(message)
    if any(name.lower() not in low for name in r.entities):
        return None
    if r.time and r.time.lower() not in low:
        return None
    said = " ".join([message, *(u + " " + a for u, a in history)])
    known = set(content_words(said))
    own = content_words(text)
    if not own or sum(w in known for w in own) / len(own) < 0.8:
        return None
    return _tidy(text)
