"""The question bank: questions generated from the stores themselves, with train / dev / test splits.

    python -m evals.bank --digests ../shared/data/lastweekinai-digests/digests --corpus corpus

writes evals/bank/{train,dev,test}.jsonl. The answerability decision (rag/calibration.json) is fitted on
train by `python -m evals.calibrate`, its threshold chosen on dev; `python -m evals.bank_report --split
test` prints the figures the README reports. Nothing is ever tuned on test.

Why generated: hand-written questions share their writer's style, and the old gate was tuned on them.
Templates built from a story's facts (outlet, date, names with their version numbers, amounts) give
hundreds of questions of each kind the gate must get right:

  answerable      one story answers it; asked from its names, outlet and month
  near_miss       the same question with a name's version number or an amount changed into one that no
                  story in the store mentions (checked against every story's text): "Llama 7" for "Llama 4"
  premise_false   an event between two organisations the store holds that no story reports together
                  (an acquisition, a ruling, a partnership)
  compositional   30-60 words over two or three stories sharing a name, naming their outlets and dates
                  (agreement, temporal order, which outlet, comparison); gold = every story it needs
  handwritten     the team's own sets (tests/data, evals/gold*.jsonl), referenced by id

Splits are by story: every story falls in one split (a stable hash of its id), a compositional question
only combines stories of one split, and the stories the CI gold sets (evals/gold*.jsonl) are about are
held in test, so nothing fitted on train or dev has seen a test story. Licence: the digests carry none,
so a question holds facts (names, numbers, dates, outlets, story ids) put into our own templates, never
a sentence; `test_bank_questions_are_our_own_words` checks that no 8-word run is copied.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from rag.answerability import holds_name, norm_text
from evals.gold import CORPUS_GOLD, DEFAULT_DIGESTS_DIR, DIGESTS_GOLD, EVALS_DIR, PROJECT_ROOT

BANK_DIR = EVALS_DIR / "bank"
SPLITS = ("train", "dev", "test")
TODAY = "2026-06-01"
HANDWRITTEN_TRAIN = (PROJECT_ROOT / "tests" / "data" / "dev_digests.jsonl",
                     PROJECT_ROOT / "tests" / "data" / "dev_refusal.jsonl")
HANDWRITTEN_TEST = (DIGESTS_GOLD, CORPUS_GOLD)

_STOP = set("""a an the of in on at to for and or but with by from as is are was were be been its it this that
these those into over after before about new how why what who when where which will can could would should
has have had not no more most than up out via vs amid says said say just now first next also all any each
our your their his her they them we you i he she my ai""".split())
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
# a name with its version or model number: "Llama 4", "GPT-4.5", "Claude 3.5", "A100", "R2", "Gemini 2.0"
_VERSIONED = re.compile(r"(?<![-\w])([A-Z][A-Za-z]*(?:[ -][A-Z][A-Za-z]+)?)([ -]?)(\d{1,3}(?:\.\d{1,2})?)(?![\d.,%$]|\s?(?:billion|million|percent|years?|%))\b")
_AMOUNT = re.compile(r"\$(\d{1,4}(?:\.\d{1,2})?)\s?(million|billion|M|B|bn)\b")
_CAP_RUN = re.compile(r"\b[A-Z][A-Za-z0-9&]+(?:[-.][A-Za-z0-9]+)*(?:\s+[A-Z][A-Za-z0-9&]+(?:[-.][A-Za-z0-9]+)*){0,2}")


def split_of(key: str) -> str:
    """A stable split for a story (or any key): 60 % train, 20 % dev, 20 % test."""
    h = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) % 10
    return "train" if h < 6 else "dev" if h < 8 else "test"


def _h(*parts: str) -> int:
    return int(hashlib.sha1("|".join(parts).encode("utf-8")).hexdigest()[:8], 16)


def human(d: date) -> str:
    return f"{_MONTHS[d.month - 1]} {d.day}, {d.year}"


def month(d: date) -> str:
    return f"{_MONTHS[d.month - 1]} {d.year}"


@dataclass
class StoryFacts:
    id: str
    title: str
    outlet: str
    published: date
    names: list[str]            # capitalised runs of the title, first word of the title excluded when generic
    rare: list[str]             # the title's rarest plain words
    body_fact: str              # a number or name from the story's body that its title does not hold
    store: str


def load_stories(path: Path):
    """Stories the way the ingest loader reads them (same ids as the store)."""
    from ingest.loaders import load_paths
    from rag.settings import Settings

    return load_paths([path], Settings()).stories


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z][A-Za-z0-9'’.-]*[A-Za-z0-9]|\d[\d.,]*", text)


class StoreText:
    """Every story's title, text and source URLs, normalised, to check that a perturbed name occurs
    nowhere (a URL slug can name the product its headline leaves out)."""

    def __init__(self, stories):
        self.blob = "\n".join(norm_text(" ".join([s.title, s.text, *s.urls])) for s in stories)
        self.df: Counter = Counter()
        self.capital: Counter = Counter()      # times a word is written capitalised inside a sentence
        self.seen: Counter = Counter()
        for s in stories:
            self.df.update({w.lower() for w in _words(s.title + " " + s.text)})
            for m in re.finditer(r"(?<=[a-z0-9,;] )([A-Za-z][\w.-]*)", s.text):
                w = m.group(1)
                self.seen[w.lower()] += 1
                if w[0].isupper():
                    self.capital[w.lower()] += 1

    def is_name(self, word: str) -> bool:
        """Written capitalised mid-sentence most of the time in the stories' text: a name, not a word
        that a Title Case headline capitalised."""
        w = word.lower()
        if any(ch.isdigit() for ch in w) or (len(word) > 1 and word.isupper()):
            return True
        n = self.seen.get(w, 0)
        return n >= 2 and self.capital.get(w, 0) >= 0.8 * n

    def holds(self, phrase: str) -> bool:
        """In any story, written any way the answerability decision would accept ("$45 M" = "$45 million")."""
        return holds_name(self.blob, phrase)

    def lines_with(self, name: str) -> set[int]:
        """Which stories mention a name (as a whole word), by index: co-occurrence checks intersect these."""
        if not hasattr(self, "_lines"):
            self._lines = self.blob.split("\n")
        pat = re.compile(r"(?<![a-z0-9])" + re.escape(norm_text(name).strip()) + r"(?![a-z0-9])")
        return {i for i, line in enumerate(self._lines) if pat.search(line)}


def facts_of(story, st: StoreText, store: str) -> StoryFacts | None:
    title = " ".join(story.title.split())
    if len(title) < 20 or not story.outlets:
        return None
    names = []
    for m in _CAP_RUN.finditer(title):
        run = [w for w in m.group(0).split() if st.is_name(w)]
        # keep the leading run of name words: "Meta Releases Llama" -> "Meta"
        lead = []
        for w in m.group(0).split():
            if not st.is_name(w):
                break
            lead.append(w)
        run = " ".join(lead)
        if run and run.lower() not in _STOP and run not in _MONTHS and run not in names:
            names.append(run)
    plain = [w for w in _words(title) if w.lower() not in _STOP and len(w) > 3 and not st.is_name(w)]
    rare = [w.lower() for w in sorted(dict.fromkeys(plain), key=lambda w: st.df.get(w.lower(), 0))[:3]]
    have = norm_text(title)
    body_fact = ""
    for m in re.finditer(r"\$?\d[\d,.]*\s?(?:%|percent|million|billion)?|\b[A-Z][a-z]+[A-Z]\w*|\b[A-Z]{2,}\w*", story.text[:600]):
        f = m.group(0).strip().rstrip(".,")
        if len(f) >= 2 and norm_text(f).strip() not in have and not re.fullmatch(r"(19|20)\d\d", f):
            body_fact = f
            break
    return StoryFacts(story.id, title, story.outlets[0], story.published_at, names[:4], rare, body_fact, store)


def _topic(f: StoryFacts, n: int = 3) -> str:
    """A few of the story's names and rare words, in our own order: what a question would be about."""
    parts = list(dict.fromkeys(f.names[:2] + f.rare[:2]))[:n]
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


ANSWERABLE_TEMPLATES = (
    "What did {outlet} report about {topic} in {month}?",
    "What happened with {topic}, according to news from {month}?",
    "What was reported on {date} about {topic}?",
    "Tell me about the news on {topic}.",
    "What do we know about {topic}?",
    "Can you summarize what was reported about {topic} in {month}?",
    "Briefly, in two or three sentences: what happened with {topic}?",
    "I'm catching up on AI news. What should I know about {topic}?",
    "Please explain, in plain terms, the {month} news about {topic}.",
)
VERSION_TEMPLATES = (
    "What did {org} announce about {name}?",
    "What is new in {name}?",
    "When was {name} released and what can it do?",
    "How does {name} compare with earlier versions?",
    "What was reported about {name} in {month}?",
)
AMOUNT_TEMPLATES = (
    "What was the {amount} deal involving {org}?",
    "Why did {org} raise {amount}?",
    "What is known about the {amount} that {org} is getting?",
)
EVENT_TEMPLATES = (
    "How much did {a} pay to acquire {b}?",
    "What did the court rule in {b}'s lawsuit against {a}?",
    "When did {a} and {b} announce their merger?",
    "Why did {a} appoint the head of {b} as its chief executive?",
    "What joint chip did {a} and {b} unveil together?",
)
COMPOSITIONAL_TEMPLATES = (
    "Do the report {o1} published on {d1} about {t1} and the later article {o2} ran on {d2} about {t2} "
    "both suggest that things are moving in the same direction, or do the two pieces of coverage disagree "
    "on what is happening?",
    "Which came first: the story {o1} ran about {t1}, or the one {o2} published about {t2}? Give the date "
    "each of them appeared ({d1} or {d2}) and explain what changed between the two reports.",
    "Which outlet reported on {t1} around {m1}, and which one later covered {t2} in {m2}? Summarize what "
    "each of those two articles said and how their accounts relate to each other.",
    "How does what {o1} reported about {t1} in {m1} compare with the coverage by {o2} of {t2} from {m2}, "
    "and what does that comparison say about how the situation developed over time?",
)
COMPOSITIONAL3 = (
    "Compare the three reports: {o1} on {t1} ({d1}), {o2} on {t2} ({d2}), and {o3} on {t3} ({d3}). "
    "Put them in the order they were published and say what each one adds to the others.",
    "Across the article {o1} ran in {m1} about {t1}, the piece {o2} ran in {m2} about {t2} and the story "
    "{o3} ran in {m3} about {t3}, which claims agree with each other and which outlet reported what first?",
)


def _pick(templates, *key: str) -> str:
    """A template for a question, salted apart from split_of: keyed on the story id alone, the pick
    would follow the split (both read the same hash), and dev and test would each get other phrasings."""
    return templates[_h("template", *key) % len(templates)]


def _perturb_version(v: str, key: str) -> list[str]:
    if "." in v:
        a, b = v.split(".", 1)
        return [f"{a}.{(int(b) + d) % 10}" for d in (3, 6, 8)] + [f"{int(a) + d}.{b}" for d in (3, 5)]
    n = int(v)
    return [str(n + d) for d in (3, 4, 6, 2, 9) if n + d < 1000]


def _org_of(f: StoryFacts, avoid: str) -> str:
    for n in f.names:
        if n != avoid and (not avoid or avoid not in n) and not re.search(r"\d", n):
            return n
    return ""


def generate(stories_by_store: dict[str, list], *, forced: dict[str, str]) -> list[dict]:
    rows: list[dict] = []
    for store, stories in stories_by_store.items():
        st = StoreText(stories)
        facts = [f for f in (facts_of(s, st, store) for s in stories) if f is not None]
        split = {f.id: forced.get(f.id) or split_of(f.id) for f in facts}

        def row(kind, question, answerable, gold, f=None, **extra):
            key = f"{store}-{kind}-{hashlib.sha1(question.encode()).hexdigest()[:10]}"
            sp = extra.pop("split", None) or split[gold[0]] if gold else extra.pop("split")
            rows.append({"id": key, "split": sp, "store": store, "kind": kind, "question": question,
                         "answerable": answerable, "gold_story_ids": gold, "today": TODAY, **extra})

        # ---- answerable single-story questions, and near-misses made from their versioned names/amounts
        for f in facts:
            topic = _topic(f)
            if topic and len(f.names) + len(f.rare) >= 2 and _h(f.id, "plain") % 5 == 0:
                q = _pick(ANSWERABLE_TEMPLATES, f.id).format(outlet=f.outlet, topic=topic, month=month(f.published),
                                                             date=human(f.published))
                row("answerable", q, True, [f.id], must_include=[f.body_fact] if f.body_fact else [])
            for m in _VERSIONED.finditer(f.title):
                base, sep, ver = m.group(1), m.group(2), m.group(3)
                if base.lower() in _STOP or base in _MONTHS or (not sep and len(base) > 3) or len(base) < 1:
                    continue
                if re.fullmatch(r"(19|20)\d\d", ver) or not all(st.is_name(w) for w in base.split()):
                    continue
                name = base + sep + ver
                org = _org_of(f, base)
                tmpl = _pick(VERSION_TEMPLATES[0 if org else 1:], f.id, name)
                kw = dict(org=org, month=month(f.published))
                row("answerable_versioned", tmpl.format(name=name, **kw), True, [f.id], versioned_name=name)
                for alt in _perturb_version(ver, f.id):
                    fake = base + sep + alt
                    if not st.holds(fake) and not st.holds(base + (" " if sep == "" else "") + alt):
                        row("near_miss", tmpl.format(name=fake, **kw), False, [], split=split[f.id],
                            absent=fake, nearest=name, nearest_story_id=f.id)
                        break
                break
            for m in _AMOUNT.finditer(f.title):
                num, unit = m.group(1), m.group(2)
                org = _org_of(f, "")
                if not org:
                    break
                amount = f"${num} {unit}"
                tmpl = _pick(AMOUNT_TEMPLATES, f.id)
                row("answerable_amount", tmpl.format(amount=amount, org=org), True, [f.id])
                for mult in (3, 7, 11):
                    alt = f"{round(float(num) * mult, 1):g}"
                    fake = f"${alt} {unit}"
                    if not st.holds(fake) and not st.holds(f"${alt}{unit[0]}"):
                        row("near_miss", tmpl.format(amount=fake, org=org), False, [], split=split[f.id],
                            absent=fake, nearest=amount, nearest_story_id=f.id)
                        break
                break

        # ---- premise-false events between organisations the store holds but never reports together
        org_df: Counter = Counter()
        for f in facts:
            for n in f.names[:2]:
                if " " not in n and not re.search(r"\d", n) and len(n) > 2 and not n.isupper():
                    org_df[n] += 1
        orgs = sorted([o for o, c in org_df.items() if c >= 8], key=lambda o: _h(o))
        made = 0
        mentions: dict[str, set[int]] = {}
        for i, a in enumerate(orgs):
            for b in orgs[i + 1: i + 6]:
                if made >= 500:
                    break
                if a not in mentions:
                    mentions[a] = st.lines_with(a)
                if b not in mentions:
                    mentions[b] = st.lines_with(b)
                if mentions[a] & mentions[b]:
                    continue
                q = _pick(EVENT_TEMPLATES, a, b).format(a=a, b=b)
                row("premise_false", q, False, [], split=split_of(a + "|" + b), entities=[a, b])
                made += 1

        # ---- long compositional questions over 2-3 stories that share a name, within one split
        groups: dict[str, list[StoryFacts]] = defaultdict(list)
        for f in facts:
            for n in f.names[:2]:
                groups[n.lower()].append(f)
        made = 0
        for name, members in sorted(groups.items(), key=lambda kv: _h(kv[0])):
            if not 2 <= len(members) <= 40 or made >= 600:
                continue
            by_split: dict[str, list[StoryFacts]] = defaultdict(list)
            for f in members:
                by_split[split[f.id]].append(f)
            for sp, fs in by_split.items():
                fs = sorted({f.id: f for f in fs if _topic(f)}.values(), key=lambda f: _h(name, f.id))
                if len(fs) < 2:
                    continue
                n = 3 if len(fs) >= 3 and _h(name, "3") % 3 == 0 else 2
                chosen = sorted(fs[:n], key=lambda f: f.published)
                if len({f.published for f in chosen}) < n:
                    continue
                kw = {}
                for j, f in enumerate(chosen, 1):
                    kw.update({f"o{j}": f.outlet, f"d{j}": human(f.published), f"m{j}": month(f.published),
                               f"t{j}": _topic(f)})
                q = _pick(COMPOSITIONAL3 if n == 3 else COMPOSITIONAL_TEMPLATES, name, sp).format(**kw)
                if not 30 <= len(q.split()) <= 60:
                    continue
                row("compositional", q, True, [f.id for f in chosen], split=sp)
                made += 1
    return rows


def handwritten(forced: dict[str, str]) -> list[dict]:
    """The team's own sets. A question with a gold story goes where its story went (so no split shares
    a story); one without goes with its file: the old development sets to train, the CI gold sets to test."""
    rows = []
    for path, sp in [(p, "train") for p in HANDWRITTEN_TRAIN] + [(p, "test") for p in HANDWRITTEN_TEST]:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            gold = r.get("gold_story_ids") or ([r["gold_id"]] if r.get("gold_id") else [])
            answerable = r.get("type", "fact" if gold else "unanswerable") != "unanswerable" and (
                bool(gold) or "kind" not in r)
            if r.get("turn", 1) != 1:
                continue                 # follow-ups need their conversation: the evals runner asks those
            rows.append({"id": f"hand-{path.stem}-{r['id']}", "split": forced.get(gold[0], sp) if gold else sp,
                         "store": "corpus" if r.get("corpus", "digests" if "gold_id" in r or "kind" in r else "corpus") == "corpus" else "digests",
                         "kind": "handwritten", "question": r["question"], "answerable": answerable,
                         "gold_story_ids": gold, "today": r.get("today") or TODAY, "from": str(path.relative_to(PROJECT_ROOT))})
    return rows


def forced_splits() -> dict[str, str]:
    """Stories the CI gold sets ask about stay in test; those only the old dev sets asked about, in train."""
    out: dict[str, str] = {}
    for path, sp in [(p, "test") for p in HANDWRITTEN_TEST] + [(p, "train") for p in HANDWRITTEN_TRAIN]:
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    r = json.loads(line)
                    for sid in r.get("gold_story_ids") or ([r["gold_id"]] if r.get("gold_id") else []):
                        out.setdefault(sid, sp)
    return out


def write_bank(rows: list[dict], out: Path = BANK_DIR) -> dict[str, Counter]:
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, Counter] = {}
    for sp in SPLITS:
        chosen = sorted((r for r in rows if r["split"] == sp), key=lambda r: r["id"])
        counts[sp] = Counter(f"{r['store']}:{r['kind']}" for r in chosen)
        with (out / f"{sp}.jsonl").open("w", encoding="utf-8") as fh:
            for r in chosen:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return counts


def load_bank(split: str, bank: Path = BANK_DIR) -> list[dict]:
    path = bank / f"{split}.jsonl"
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate the question bank (evals/bank/*.jsonl).")
    ap.add_argument("--digests", type=Path, default=DEFAULT_DIGESTS_DIR)
    ap.add_argument("--corpus", type=Path, default=PROJECT_ROOT / "corpus")
    ap.add_argument("--out", type=Path, default=BANK_DIR)
    args = ap.parse_args(argv)
    stores = {}
    if args.digests.is_dir():
        stores["digests"] = load_stories(args.digests)
    else:
        print(f"digests folder {args.digests} not found: generating from the corpus only", file=sys.stderr)
    if args.corpus.is_dir():
        stores["corpus"] = load_stories(args.corpus)
    forced = forced_splits()
    rows = generate(stores, forced=forced)
    rows += handwritten(forced)
    seen, unique = set(), []
    for r in rows:
        if r["id"] not in seen:
            seen.add(r["id"])
            unique.append(r)
    counts = write_bank(unique, args.out)
    for sp, c in counts.items():
        print(sp, sum(c.values()), dict(sorted(c.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
