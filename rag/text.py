"""Text primitives shared by chunking, answering and verification.

One sentence splitter for the whole product: chunks end on the same boundaries that the extractive
generator quotes and the verifier checks, so a cited sentence is always found whole in its source.
"""
from __future__ import annotations

import re
from functools import lru_cache

_ABBREV = {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "inc", "ltd", "corp", "co",
           "fig", "u.s", "u.k", "e.g", "i.e", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
           "sep", "sept", "oct", "nov", "dec", "approx", "est", "gen", "gov", "sen", "rep", "mt", "ft"}
ABBREVIATIONS = _ABBREV      # words whose "." does not end a sentence (streaming cuts on the same rule)
# A sentence starts with a capital, a digit or a currency sign -- or with a name written lowercase-first
# ("xAI", "iPhone", "eBay", "arXiv"): a lowercase word with a capital inside. A plain lowercase word
# after a period is almost always an abbreviation's tail ("Microsoft Corp. has", "Inc. today").
SENTENCE_INITIAL = r"(?:[A-Z0-9$€£]|[a-z]{1,5}[A-Z])"   # also where a streamed answer is cut (rag.pipeline)
_SENT_END = re.compile(r"([.!?…][\"'”’)\]]*)\s+(?=[\"'“‘(\[]?" + SENTENCE_INITIAL + ")")
_WS = re.compile(r"\s+")


def normalize_space(text: str) -> str:
    return _WS.sub(" ", text or "").strip()


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences without breaking on "U.S.", "Inc.", "3.2" or initials."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text or ""):
        para = normalize_space(para)
        if not para:
            continue
        start = 0
        for m in _SENT_END.finditer(para):
            end = m.end(1)
            before = para[start:end]
            last = re.search(r"([A-Za-z.]+)[.!?…][\"'”’)\]]*$", before)
            if m.group(1).startswith(".") and last:
                word = last.group(1).lower().rstrip(".")
                if word in _ABBREV or (len(word) == 1 and word.isalpha()) or (
                        word == "no" and para[m.end():m.end() + 1].isdigit()):
                    continue
            piece = para[start:end].strip()
            if piece:
                out.append(piece)
            start = m.end()
        tail = para[start:].strip()
        if tail:
            out.append(tail)
    return out


_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-\.]*[A-Za-z0-9%]|[A-Za-z0-9%$]")
STOPWORDS = frozenset("""a about above after again against all also am an and any are as at be because been
before being below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself just me
more most my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those through
to too under until up very was we were what when where which while who whom why will with would you your
yours yourself yourselves said says say new one ai its it's latest recent recently news story stories
week month year today yesterday tell me what's whats did does do know""".split())


_SLASHED = re.compile(r"\b([A-Za-z])/([A-Za-z])\b")   # "I/O", "A/B": one word, not two letters


def words(text: str) -> list[str]:
    """Lower-cased words, the typographic apostrophe read as the plain one: the stemmer drops a
    possessive "'s" but not "’s", and "ChatGPT’s" must match "ChatGPT"."""
    return [w.lower().replace("’", "'").strip(".'-") for w in _WORD.findall(_SLASHED.sub(r"\1\2", text or ""))]


def content_words(text: str) -> list[str]:
    """Lower-cased words without stop words: what lexical support and relevance are measured on."""
    return [w for w in words(text) if w and w not in STOPWORDS and len(w) > 1 or (w.isdigit())]


@lru_cache(maxsize=1)
def _stemmer():
    try:
        import Stemmer  # PyStemmer
        return Stemmer.Stemmer("english")
    except Exception:  # pragma: no cover - stemmer is a dependency; keep lexical matching working without
        return None


def stems(tokens: list[str]) -> list[str]:
    st = _stemmer()
    return st.stemWords(tokens) if st else tokens


_NUMBER = re.compile(r"(?<![A-Za-z0-9.])[$€£]?\d[\d,]*(?:\.\d+)?(?:\s?(?:%|percent|billion|million|trillion|bn|m|b|k))?",
                     re.I)
_MONTHS = ("january february march april may june july august september october november december "
           "jan feb mar apr jun jul aug sep sept oct nov dec").split()
_CAP = re.compile(r"\b[A-Z][A-Za-z0-9&\-]*(?:[A-Z0-9][A-Za-z0-9&\-]*)*\b")


def numbers(text: str) -> set[str]:
    """Numeric facts in a normalised form ("$3.2 billion" -> "3.2"), used to catch swapped figures."""
    out = set()
    for m in _NUMBER.finditer(text or ""):
        core = re.sub(r"[^\d.]", "", m.group(0).replace(",", "")).strip(".")
        if core:
            out.add(core)
    return out


def names(text: str) -> set[str]:
    """Capitalised names not at the start of a sentence: the entities a claim must share with its source."""
    out = set()
    for sent in split_sentences(text) or [text or ""]:
        toks = list(_CAP.finditer(sent))
        for m in toks:
            if m.start() == 0:
                continue
            w = m.group(0)
            lw = w.lower()
            if lw in STOPWORDS or lw in _MONTHS or lw in _ABBREV or len(w) < 2:
                continue
            out.add(lw)
    return out


def search_terms(text: str) -> list[str]:
    """Stemmed content words, with compound names also split into their parts and prefixes.

    Product names are hyphenated compounds ("Qwen3-Next-80B-A3B", "GPT-5.2"); a question says
    "Qwen3-Next" or "GPT-5". Indexing the parts and the leading sub-compounds lets either form match.
    """
    out: list[str] = []
    for w in content_words(text):
        if "-" in w:
            parts = [p for p in w.split("-") if p]
            out.append(w)
            out += [p for p in parts if p not in STOPWORDS and (len(p) > 1 or p.isdigit())]
            out += ["-".join(parts[:i]) for i in range(2, len(parts))]
        else:
            out.append(w)
    return stems(out) + money_terms(text)


_MONEY = re.compile(r"(?:US)?\$\s?(\d{1,4}(?:,\d{3})*(?:\.\d{1,2})?)\s?"
                    r"(trillion|tn|t|billion|bn|b|million|mn|mln|m|thousand|k)?\b", re.I)
_MONEY_UNIT = {"trillion": "t", "tn": "t", "t": "t", "billion": "b", "bn": "b", "b": "b", "million": "m",
               "mn": "m", "mln": "m", "m": "m", "thousand": "k", "k": "k"}


def money_terms(text: str) -> list[str]:
    """One term per dollar amount, however it is written: "$25M", "$25 M", "$25 million" and "$25mn" are all
    "usd25m". Words alone cannot match them ("$25M" is the word "25m", "$25 million" the words "25" and
    "million"), and a question that names an amount asks about the story that holds that amount."""
    out = []
    for m in _MONEY.finditer(text or ""):
        unit = _MONEY_UNIT.get((m.group(2) or "").lower(), "")
        out.append(f"usd{canonical_number(m.group(1))}{unit}")
    return out


def canonical_number(n: str) -> str:
    """One spelling per number, so "1,500" == "1500", "3.20" == "3.2" and "09" == "9" when facts are compared."""
    n = n.replace(",", "")
    if "." in n:
        whole, frac = n.split(".", 1)
        frac = frac.rstrip("0")
        whole = whole.lstrip("0") or "0"
        return f"{whole}.{frac}" if frac else whole
    return n.lstrip("0") or "0"


@lru_cache(maxsize=1)
def request_terms() -> frozenset[str]:
    """Terms about how a request is put, not what it asks about: "Briefly, in two or three sentences,
    explain ..." or "give me a summary in bullet points of ..." names no news, and nor does the verb any
    news question may use ("What has AMD announced?": nearly every story announces something). How much
    of a question a story covers is measured without them, and a brief's topic made of them is no topic."""
    return frozenset(search_terms(
        "happen happened happening explain explained describe details summarize summarise overview anything "
        "something things going goes get got mention mentioned write long short brief briefly detailed detail "
        "account paragraph paragraphs bullet bullets points list summary sentence sentences words please "
        "everything tell know give catch catching should want wondering curious plain simple simply quick "
        "quickly couple few two three announce announced announces"))
