"""Metric definitions: the custom `groundedness` ragas metric, must-include matching, citation validity,
refusal accounting, and the ragas `evaluate()` passes that score a run.

Groundedness (a ragas SingleTurnMetric, built on the ExactMatch template of ragas/metrics/_string.py)
------------------------------------------------------------------------------------------------
Input: `response` (the bot's answer with its [n] markers) and `retrieved_contexts`, where
retrieved_contexts[n-1] is the text of the story the answer cites as [n] (title, publication date in
the usual written forms, outlets, full story text; "" for numbers the answer does not cite).

Score = supported claim sentences / claim sentences, in [0, 1]; 0.0 (never NaN) when nothing is checkable.

* Sentences: every line of the answer except headings ("#") and pipeline notices, list bullets and
  markdown emphasis stripped, split with `rag.text.split_sentences`; markers read with
  `rag.verify.extract_markers`.
* Claim sentence: >= 4 content words, or any number or name. Sentences that only say the sources do
  not cover something ("the sources do not mention ...") make no claim and are skipped.
* A claim sentence is supported when ALL of:
  1. it cites at least one context that exists and is non-empty (an uncited claim is unsupported);
  2. facts: every number in it (`rag.text.numbers`, canonicalised: "1,500" == "1500", "3.20" == "3.2",
     "09" == "9"; spelled-out numbers in the context count) and every name (`rag.text.names`, plus a
     sentence-initial token with an inner capital or digit such as "OpenAI", "GPT-5") occurs in the
     cited contexts (names case-insensitively, whole words, possessive allowed);
  3. support = 0.5 * lexical + 0.5 * semantic >= 0.6, where
       lexical  = share of the sentence's content-word stems found in the cited contexts,
       semantic = max cosine between the sentence and any sentence of the cited contexts
                  (local all-MiniLM-L6-v2 through the ragas embeddings passed to evaluate()).
* Deterministic: no LLM, no sampling; the embedding model is a fixed local path.

It is a groundedness proxy, not NLI faithfulness. Known blind spots: negation ("did not release"),
swapped roles between two names that both occur in the context, and a wrong claim assembled from
words, numbers and names that all occur somewhere in the cited story. tests/test_groundedness.py
keeps it honest with negative controls (swapped numbers and names, unrelated sentences, wrong contexts).

It differs from the product's own check (`rag.verify`): verification rewrites markers and checks
sentences against the retrieved *chunk*; this metric takes the final markers as given and re-checks
each sentence against the full cited *story*, with its own threshold, so the eval does not simply
re-run the code it evaluates.
"""
from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Iterable, Sequence

import numpy as np

from rag.text import content_words, names, normalize_space, numbers, split_sentences, stems
from rag.verify import NOTICE_PREFIX, date_forms, extract_markers

# ragas imports are deferred-safe: evals/__init__ applied rag.offline before this module loads.
from ragas.dataset_schema import SingleTurnSample
from ragas.metrics.base import MetricType, MetricWithEmbeddings, SingleTurnMetric
from ragas.run_config import RunConfig

SUPPORT_THRESHOLD = 0.6
LEXICAL_WEIGHT = 0.5
MIN_CLAIM_WORDS = 4

_LIST_PREFIX = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")
_MD_EMPH = re.compile(r"(\*\*|__|`)")
# "... sentence. [1][2]" -> "... sentence [1][2]." so the splitter keeps the markers with their sentence
_MARKERS_AFTER_PUNCT = re.compile(r"([.!?…][\"'”’)]*)((?:\s*\[\s*\d{1,4}(?:\s*[,;–-]\s*\d{1,4})*\s*\])+)")
_NO_CLAIM = re.compile(
    r"\b(?:sources?|articles?|stories|context|news I hold)\b[^.]{0,60}?\b(?:do(?:es)?\s*n[o']?t|did\s*n[o']?t|don['’]t|doesn['’]t|not)\b"
    r"[^.]{0,40}?\b(?:mention|say|cover|contain|answer|include|provide|specify|state|report)", re.I)
_NUMBER_WORDS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
                 "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20",
                 "thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000",
                 "dozen": "12"}
_NUMBER_WORD_RE = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.I)
_INITIAL_NAME = re.compile(r"^[\"'“‘(]*([A-Z][A-Za-z0-9&\-]*[A-Z0-9][A-Za-z0-9&\-]*)")


# ----------------------------------------------------------------------------------- text helpers

from rag.text import canonical_number  # noqa: E402  (one spelling per number, shared with rag.verify)


def number_set(text: str) -> set[str]:
    out = {canonical_number(n) for n in numbers(text)}
    out |= {_NUMBER_WORDS[w.lower()] for w in _NUMBER_WORD_RE.findall(text or "")}
    return out


def digit_numbers(text: str) -> set[str]:
    """Numbers an answer sentence states in digits: each must occur in the cited context."""
    return {canonical_number(n) for n in numbers(text)}


def stem_set(text: str) -> set[str]:
    toks = [re.sub(r"['’]s$", "", w) for w in content_words(text)]
    return set(stems([t for t in toks if t]))


_INITIAL_WORD = re.compile(r"^[\"'“‘(]*([A-Z][A-Za-z0-9&\-]*)")


def claim_names(sentence: str, known: frozenset[str] | set[str] = frozenset()) -> set[str]:
    """Names a sentence asserts: `rag.text.names` (capitalised, not sentence-initial) plus the first word
    when it looks like a name ("OpenAI", "GPT-5") or is a known name ("Google", "Zoox": capitalised
    mid-sentence somewhere in the store, see `known_names`)."""
    out = set(names(sentence))
    m = _INITIAL_NAME.match(sentence)
    if m:
        out.add(m.group(1).lower())
    else:
        w = _INITIAL_WORD.match(sentence)
        if w and w.group(1).lower() in known:
            out.add(w.group(1).lower())
    return out


def known_names(texts: Iterable[str]) -> frozenset[str]:
    """Every word written capitalised in the middle of a sentence somewhere in `texts` (the store's
    stories): the vocabulary that tells a sentence-initial name ("Google ...") from an ordinary
    capitalised first word ("Analysts ...")."""
    out: set[str] = set()
    for t in texts:
        out |= names(t)
    return frozenset(out)


def has_name(name: str, haystack_lower: str) -> bool:
    pat = r"(?<![a-z0-9])" + re.escape(name.lower()) + r"(?:['’]s)?(?![a-z0-9])"
    return re.search(pat, haystack_lower) is not None


def strip_markers(text: str) -> str:
    """The answer without [n] markers, for comparison with a reference answer."""
    lines = []
    for line in (text or "").splitlines():
        clean, _ = extract_markers(line)
        lines.append(clean)
    return normalize_space(" ".join(lines))


def normalize_for_match(text: str) -> str:
    """How must_include strings and answers are compared: lower case, one space, typographic quotes and
    dashes folded, "percent"/"per cent" -> "%", thousands separators removed ("8,000" == "8000"),
    "U.S." == "US"; markers removed."""
    t = strip_markers(text or "").lower()
    t = t.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    t = re.sub(r"[‐‑‒–—]", "-", t)
    t = re.sub(r"\s*(?:per\s?cent|percent)\b", "%", t)
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)
    t = t.replace("u.s.", "us")
    return normalize_space(t)


def story_context(title: str, text: str, published: date | None, outlets: Sequence[str]) -> str:
    """A cited story as the groundedness metric sees it: what an answer may legitimately take from it."""
    head = [title.strip()]
    if published:
        head.append("Published " + "; ".join(date_forms(published)) + ".")
    if outlets:
        head.append("Reported by " + ", ".join(outlets) + ".")
    return "\n".join(head) + "\n\n" + (text or "").strip()


# ----------------------------------------------------------------------------------- groundedness

@dataclass
class SentenceVerdict:
    sentence: str
    markers: list[int]
    claim: bool
    supported: bool
    lexical: float = 0.0
    semantic: float = 0.0
    support: float = 0.0
    missing_numbers: list[str] = field(default_factory=list)
    missing_names: list[str] = field(default_factory=list)
    reason: str = ""


def answer_sentences(response: str) -> list[tuple[str, list[int]]]:
    """(sentence without markers, its markers) for every sentence the metric looks at."""
    out: list[tuple[str, list[int]]] = []
    for line in (response or "").splitlines():
        s = line.strip()
        if not s or s.startswith(("#", NOTICE_PREFIX)):
            continue
        s = _MD_EMPH.sub("", _LIST_PREFIX.sub("", s))
        s = _MARKERS_AFTER_PUNCT.sub(lambda m: f"{m.group(2)}{m.group(1)}", s)
        for sent in split_sentences(s):
            clean, markers = extract_markers(sent)
            if clean:
                out.append((clean, markers))
    return out


def is_claim(sentence: str) -> bool:
    if _NO_CLAIM.search(sentence):
        return False
    return (len(content_words(sentence)) >= MIN_CLAIM_WORDS or bool(numbers(sentence))
            or bool(names(sentence)))


class _ContextView:
    __slots__ = ("lower", "stems", "numbers", "sentences")

    def __init__(self, text: str):
        self.lower = text.lower()
        self.stems = stem_set(text)
        self.numbers = number_set(text)
        self.sentences = [s for s in split_sentences(text) if s.strip()] or ([text] if text.strip() else [])


@dataclass
class Groundedness(MetricWithEmbeddings, SingleTurnMetric):
    """Share of answer sentences supported by the contexts they cite (see module docstring)."""

    name: str = "groundedness"
    _required_columns: dict = field(
        default_factory=lambda: {MetricType.SINGLE_TURN: {"response", "retrieved_contexts"}})
    threshold: float = SUPPORT_THRESHOLD
    known: frozenset = field(default_factory=frozenset)   # see known_names(); empty = inner-capital rule only

    def __post_init__(self):
        self._vec_cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def init(self, run_config: RunConfig):
        if self.embeddings is None:
            raise ValueError("groundedness needs local embeddings: pass embeddings= to evaluate() "
                             "or Groundedness(embeddings=...)")

    # -- embeddings, cached per text: answers cite the same stories again and again --------------
    def _embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._vec_cache]
        if missing:
            emb = self.embeddings
            if hasattr(emb, "embed_texts"):
                vecs = emb.embed_texts(missing)
            elif hasattr(emb, "embed_documents"):
                vecs = emb.embed_documents(missing)
            else:  # pragma: no cover
                raise TypeError(f"unsupported embeddings object {type(emb).__name__}")
            arr = np.asarray(vecs, dtype=np.float32)
            norms = np.linalg.norm(arr, axis=1, keepdims=True)
            arr = arr / np.where(norms == 0, 1, norms)
            with self._lock:
                for t, v in zip(missing, arr):
                    self._vec_cache[t] = v
        with self._lock:
            return np.stack([self._vec_cache[t] for t in texts]) if texts else np.zeros((0, 1), np.float32)

    def prewarm(self, pairs: Iterable[tuple[str, Sequence[str]]]) -> int:
        """Embed every answer sentence and cited-context sentence of many samples in one batch (much
        faster than one small batch per sample); returns how many texts were embedded."""
        texts: list[str] = []
        for response, contexts in pairs:
            texts += [s for s, _ in answer_sentences(response)]
            for c in contexts:
                if c and c.strip():
                    texts += _ContextView(c).sentences
        texts = list(dict.fromkeys(texts))
        if texts:
            self._embed(texts)
        return len(texts)

    def explain(self, response: str, contexts: Sequence[str]) -> list[SentenceVerdict]:
        """Per-sentence verdicts; `score()` is the share of supported claim sentences among them."""
        views: dict[int, _ContextView] = {}
        verdicts: list[SentenceVerdict] = []
        for sent, markers in answer_sentences(response):
            if not is_claim(sent):
                verdicts.append(SentenceVerdict(sent, markers, claim=False, supported=False, reason="no claim"))
                continue
            cited = [m for m in markers if 1 <= m <= len(contexts) and (contexts[m - 1] or "").strip()]
            if not cited:
                why = "no citation" if not markers else f"cites missing context {markers}"
                verdicts.append(SentenceVerdict(sent, markers, claim=True, supported=False, reason=why))
                continue
            for m in cited:
                if m not in views:
                    views[m] = _ContextView(contexts[m - 1])
            cv = [views[m] for m in cited]
            ctx_lower = "\n".join(v.lower for v in cv)
            ctx_numbers = set().union(*(v.numbers for v in cv))
            ctx_stems = set().union(*(v.stems for v in cv))
            missing_numbers = sorted(n for n in digit_numbers(sent) if n not in ctx_numbers)
            missing_names = sorted(n for n in claim_names(sent, self.known) if not has_name(n, ctx_lower))
            s_stems = stem_set(sent)
            lexical = len(s_stems & ctx_stems) / len(s_stems) if s_stems else 1.0
            ctx_sents = [s for v in cv for s in v.sentences]
            vecs = self._embed([sent] + ctx_sents)
            semantic = float(max(0.0, (vecs[1:] @ vecs[0]).max())) if ctx_sents else 0.0
            support = LEXICAL_WEIGHT * lexical + (1 - LEXICAL_WEIGHT) * semantic
            ok = not missing_numbers and not missing_names and support >= self.threshold
            reasons = []
            if missing_numbers:
                reasons.append("numbers not in cited context: " + ", ".join(missing_numbers))
            if missing_names:
                reasons.append("names not in cited context: " + ", ".join(missing_names))
            if support < self.threshold:
                reasons.append(f"support {support:.2f} < {self.threshold}")
            verdicts.append(SentenceVerdict(sent, markers, True, ok, round(lexical, 4), round(semantic, 4),
                                            round(support, 4), missing_numbers, missing_names,
                                            "ok" if ok else "; ".join(reasons)))
        return verdicts

    def score_text(self, response: str, contexts: Sequence[str]) -> float:
        claims = [v for v in self.explain(response, contexts) if v.claim]
        return sum(v.supported for v in claims) / len(claims) if claims else 0.0

    async def _single_turn_ascore(self, sample: SingleTurnSample, callbacks) -> float:
        return self.score_text(sample.response or "", list(sample.retrieved_contexts or []))

    async def _ascore(self, row: dict, callbacks) -> float:
        return await self._single_turn_ascore(SingleTurnSample(**row), callbacks)


def cited_contexts(answer_text: str, citations: Iterable[dict], story_text: dict[str, str]) -> list[str]:
    """retrieved_contexts for groundedness: position n-1 holds the story cited as [n]."""
    by_n = {int(c["n"]): story_text.get(c["story_id"], "") for c in citations}
    markers = [m for _, ms in answer_sentences(answer_text) for m in ms]
    size = max([0, *by_n.keys(), *markers])
    return [by_n.get(i + 1, "") for i in range(size)]


# ------------------------------------------------------------------------------------ citations

def citation_is_valid(citation: dict, story_full_text: str, retrieved_ids: set[str]) -> tuple[bool, str]:
    """A citation is valid when its story was retrieved and every sentence of its snippet occurs in that
    story (whitespace and typographic quotes normalised)."""
    if citation.get("story_id") not in retrieved_ids:
        return False, "cited story not among the retrieved stories"
    snippet = citation.get("snippet") or ""
    if not snippet.strip():
        return False, "empty snippet"
    hay = normalize_for_match(story_full_text)
    for s in split_sentences(snippet) or [snippet]:
        if normalize_for_match(s) not in hay:
            return False, f"snippet sentence not in story: {s[:80]!r}"
    return True, "ok"


# ---------------------------------------------------------------------------------- ragas passes

def local_embeddings(model_path: str):
    """ragas' modern HuggingFaceEmbeddings over a local sentence-transformers directory (never a Hub id)."""
    from pathlib import Path

    from ragas.embeddings import HuggingFaceEmbeddings

    if not Path(model_path).is_dir():
        raise FileNotFoundError(f"embedding model path {model_path!r} is not a local directory")
    return HuggingFaceEmbeddings(model=model_path, device="cpu", local_files_only=True)


def judge_llm(base_url: str, model: str, *, api_key: str = "sk-local", timeout: float = 300.0,
              max_tokens: int = 1024, parse_retries: int = 1):
    """An OpenAI-compatible judge through ragas.llms.llm_factory (instructor, JSON mode).

    The OpenAI client retries a failed HTTP request at most once; `parse_retries` is instructor's
    `max_retries` (passed through ragas' model args): how often an unparseable answer is re-asked.
    Instructor's default re-asks three times, which on a CPU-only small model costs minutes per sample
    and rarely turns a model that cannot follow the schema into one that can."""
    from openai import OpenAI
    from ragas.llms import llm_factory

    client = OpenAI(base_url=base_url, api_key=api_key or "sk-local", timeout=timeout, max_retries=1)
    return llm_factory(model, provider="openai", client=client, max_tokens=max_tokens, temperature=0.0,
                       max_retries=parse_retries)


def run_evaluate(samples: list[SingleTurnSample], metrics: list, *, embeddings, llm=None,
                 timeout: float = 600.0, raise_exceptions: bool = True) -> dict[str, list[float]]:
    """ragas.evaluate() over the samples; returns {metric column: per-sample scores (NaN kept)}.

    Every LLM metric must get the judge explicitly: nothing may fall back to ragas' OpenAI default."""
    from ragas import EvaluationDataset, evaluate
    from ragas.metrics.base import MetricWithLLM

    if not samples:
        return {}
    for m in metrics:
        if isinstance(m, MetricWithLLM) and m.llm is None and llm is None:
            raise RuntimeError(f"{m.name} needs a judge LLM and none is configured (refusing ragas' OpenAI default)")
        if isinstance(m, MetricWithEmbeddings) and m.embeddings is None and embeddings is None:
            raise RuntimeError(f"{m.name} needs embeddings and none were given")
    res = evaluate(EvaluationDataset(samples=samples), metrics=metrics, llm=llm, embeddings=embeddings,
                   run_config=RunConfig(timeout=timeout, max_retries=1, max_workers=1),
                   raise_exceptions=raise_exceptions, show_progress=False, batch_size=None)
    df = res.to_pandas()
    out: dict[str, list[float]] = {}
    for m in metrics:
        col = next((c for c in df.columns if c == m.name or c.startswith(m.name + "(")), None)
        if col is None:
            raise RuntimeError(f"ragas returned no column for {m.name}: {list(df.columns)}")
        out[m.name] = [float(x) if x is not None else math.nan for x in df[col].tolist()]
    return out


def is_nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def mean(xs: Iterable[float]) -> float:
    vals = [x for x in xs if not is_nan(x)]
    return float(sum(vals) / len(vals)) if vals else math.nan
