"""Loaders: every input format becomes normalised Story records, and every bad input a specific reason.

All inputs are real files (tests/fixtures/loaders, written for these tests) or, for URLs, a real HTTP
server on 127.0.0.1. The last section runs over the real newsletter digests in ../shared when present.
"""
from __future__ import annotations

import socket
import threading
import time
from collections import Counter, defaultdict
from datetime import date, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ingest.loaders import LoadResult, Skipped, load_paths, parse_document
from ingest.loaders.base import NO_DATE_REASON, TITLE_FALLBACK_WORDS
from ingest.loaders.digests import (LAYOUTS, URL_DATE_WINDOW_DAYS, digest_date_for, digest_entries,
                                    looks_like_digest)
from ingest.loaders.markdown import split_front_matter
from ingest.outlets import outlet_from_url
from rag.records import canonical_url
from rag.settings import Settings

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "loaders"
GOOD = FIXTURES / "good"
BAD = FIXTURES / "bad"
KITCHEN = GOOD / "2024-03-05-robot-kitchen.md"
DIGESTS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lastweekinai-digests" / "digests"


def load(*paths: str | Path, **settings) -> LoadResult:
    return load_paths([str(p) for p in paths], Settings(**settings))


def by_title(result: LoadResult) -> dict:
    return {s.title: s for s in result.stories}


def reasons_for(result: LoadResult, path: Path | str) -> list[str]:
    key = str(Path(path).resolve()) if not str(path).startswith("http") else str(path)
    return [s.reason for s in result.skipped if s.path in (key, str(path))]


# --- one test per format ---------------------------------------------------------------------------------

def test_markdown_story_reads_front_matter_and_strips_markup():
    result = load(KITCHEN)
    assert result.skipped == [] and result.sources_seen == [str(KITCHEN.resolve())]
    [story] = result.stories
    assert story.title == "Test kitchen robot learns to plate desserts from a dozen demonstrations"
    assert story.published_at == date(2024, 3, 5)
    assert [s.outlet for s in story.sources] == ["Example Robotics Weekly", "The Verge"]   # 2nd from host
    assert story.id.startswith("u") and story.origin == str(KITCHEN.resolve())
    assert story.tags == ["robotics", "imitation learning"]
    assert story.author == "Fixture Writer"
    assert "three desserts" in story.text and "**" not in story.text and "](" not in story.text
    assert story.text.count("\n\n") == 1 and story.notes == []


def test_markdown_heading_title_and_flat_url_source_fields():
    [story] = load(GOOD / "2024-05-20-heading-title.md").stories
    assert story.title == "Pretend voice-clone detector flags synthetic callers"
    assert not story.text.startswith("#") and "Pretend voice-clone" not in story.text
    assert story.sources[0].outlet == "Ars Technica" and story.url.startswith("https://arstechnica.com/")
    assert story.tags == ["voice", "security"]


def test_digest_fixture_covers_every_layout_and_drops_non_stories():
    path = GOOD / "2025-02-10-7.md"
    text = path.read_text(encoding="utf-8")
    fm = split_front_matter(text)
    assert looks_like_digest(fm.meta, fm.body)
    layouts = Counter(e.layout for e in digest_entries(fm.body) if e.text)
    assert layouts == {"heading-link": 1, "paragraph": 2, "bullet": 1, "heading-quote": 1}

    stories = by_title(load(path))
    assert set(stories) == {
        "Imaginary chip startup ships its first inference board",        # ' - TechCrunch' suffix removed
        "Toy benchmark shows small models can count letters",
        "Fictional parliament debates a chatbot labelling rule",
        "Pretend retailer tries robot shelf scanners",
        "A quoted headline in the oldest layout",
    }
    lead = stories["Imaginary chip startup ships its first inference board"]
    assert [s.outlet for s in lead.sources] == ["TechCrunch", "Reuters", "example.org"]       # Related: links
    assert lead.published_at == date(2025, 2, 6)                                             # date in URL
    assert lead.tags == ["top news", "digest"]
    assert "first board" in lead.text and "**" not in lead.text and "![" not in lead.text
    assert "subscribe" not in lead.text.lower()
    assert stories["Toy benchmark shows small models can count letters"].published_at == date(2025, 2, 10)
    assert stories["Fictional parliament debates a chatbot labelling rule"].tags == ["policy", "digest"]
    assert stories["Pretend retailer tries robot shelf scanners"].tags == ["advances & business", "digest"]
    assert stories["A quoted headline in the oldest layout"].outlet == "The New York Times"


def test_json_document_with_items_and_common_field_names():
    stories = by_title(load(GOOD / "records.json"))
    app = stories["Invented translation app adds offline mode"]
    assert app.published_at == date(2024, 5, 14)                          # RFC 2822 pubDate
    assert app.outlet == "Engadget" and app.tags == ["apps", "translation"] and app.author == "A. Tester"
    city = stories["Imaginary city pilots AI traffic lights"]
    assert city.published_at == date(2024, 5, 15)                          # the publisher's own day
    assert city.outlet == "Axios" and city.tags == ["cities", "policy"] and "six-month trial" in city.text


def test_jsonl_bad_line_skips_only_that_line():
    path = GOOD / "records.jsonl"
    result = load(path)
    assert sorted(s.title for s in result.stories) == [
        "Fictional startup raises a seed round for robot lawnmowers",
        "Pretend museum uses a chatbot as a tour guide"]
    [reason] = reasons_for(result, path)
    assert reason.startswith("line 2: malformed JSON at column ")
    assert result.sources_seen == [str(path.resolve())]


def test_html_article_uses_metadata_and_main_text_only():
    [story] = load(GOOD / "article.html").stories
    assert story.title == "Invented weather model beats a physics baseline on rainfall"
    assert story.published_at == date(2024, 7, 9)
    assert story.url == "https://news.example.com/2024/07/09/weather-model-rainfall"
    assert story.outlet == "Example News" and story.author == "Sam Fixture"
    assert story.tags == ["weather", "forecasting"]
    assert "held-out data" in story.text and "extreme storms" in story.text
    for noise in ("Home", "Trending", "Sign up", "trackPageView", "Copyright", "By Sam Fixture", "font-family"):
        assert noise not in story.text


def test_html_without_article_markup_uses_the_densest_block():
    [story] = load(FIXTURES / "extra" / "2024-10-01-plain-page.html").stories
    assert story.title == "Pretend lab notebook"                        # <title> as the last resort
    assert story.text.startswith("This page has no article") and "stack cups" in story.text
    assert "Home" not in story.text and "Follow us" not in story.text
    assert story.published_at == date(2024, 10, 1) and story.notes == ["date taken from the file name"]


def test_rss_feed_one_story_per_item():
    stories = by_title(load(GOOD / "feed.rss"))
    model = stories["Fictional lab releases a small open model"]
    assert model.published_at == date(2024, 8, 1) and model.outlet == "Example AI Wire"
    assert model.text == "A made-up lab published weights for a compact model.\n\nIt fits on a laptop."
    assert model.tags == ["models", "open source"]
    assert stories["Pretend regulator opens a consultation on AI audits"].published_at == date(2024, 8, 2)


def test_atom_feed_prefers_full_content_and_falls_back_to_updated_date():
    stories = by_title(load(GOOD / "feed.atom"))
    bench = stories["Invented benchmark for spreadsheet agents"]
    assert bench.published_at == date(2024, 9, 2) and "fifty small spreadsheets" in bench.text
    assert bench.outlet == "Example Lab Notes" and bench.tags == ["agents"]
    assert stories["Notes on a pretend robot hand"].published_at == date(2024, 9, 1)


def test_plain_text_story_with_header_lines_and_file_name_date():
    [story] = load(GOOD / "2024-06-01-plain.txt").stories
    assert story.title == "Imaginary hospital trials an AI note-taker"
    assert story.published_at == date(2024, 6, 1) and story.outlet == "STAT"
    assert story.tags == ["health", "scribes"] and story.notes == ["date taken from the file name"]


def test_folder_is_walked_sorted_and_hidden_files_are_ignored():
    result = load(GOOD)
    assert "Hidden draft that must never load" not in by_title(result)
    seen = [Path(p).name for p in result.sources_seen]
    assert seen == sorted(seen) and ".draft.md" not in seen and len(seen) == 9
    assert [Path(s.path).name for s in result.skipped] == ["records.jsonl"]       # its one bad line
    assert len(result.stories) == 17


# --- bad input: a specific reason, and the valid file in the same call still loads ----------------------

BAD_CASES = [
    ("binary.md", ["binary file", "NUL byte at offset 53"]),
    ("latin1.md", ["not UTF-8", "byte 0xe9 at offset 56"]),
    ("broken-front-matter.md", ["malformed front matter at line 4, column 1", "from line 2, column 8"]),
    ("broken.json", ["malformed JSON at line 3, column 29"]),
    ("broken.xml", ["malformed XML at line 6, column 13", "mismatch"]),   # the file's own lines
    ("xml-bomb.rss", ["XML bomb", "never expanded"]),
    ("empty-body.md", ["empty body"]),
    ("blank.md", ["empty file"]),
    ("no-date.md", [NO_DATE_REASON]),
    ("notes.pdf", ["unsupported file type '.pdf'", ".md", ".jsonl", ".atom"]),
    ("undated.txt", ["no publication date", "Published: YYYY-MM-DD"]),
    ("run-on.txt", ["no title"]),
]


@pytest.mark.parametrize("name, expected", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_file_is_skipped_with_a_specific_reason(name, expected):
    result = load(BAD / name, KITCHEN)
    [reason] = reasons_for(result, BAD / name)
    for part in expected:
        assert part in reason
    assert [s.origin for s in result.stories] == [str(KITCHEN.resolve())]
    assert result.sources_seen == [str(KITCHEN.resolve())]


def test_bad_records_in_a_json_list_are_skipped_one_by_one():
    path = BAD / "partial.json"
    result = load(path)
    assert [s.title for s in result.stories] == ["Made-up insurer uses a model to sort claims"]
    assert reasons_for(result, path) == ["item 2: empty body: no story text found",
                                         "item 3: expected an object with story fields, found a str"]
    assert result.sources_seen == [str(path.resolve())]


def test_feed_item_without_a_date_is_skipped_alone():
    path = BAD / "undated-item.rss"
    result = load(path)
    assert [s.title for s in result.stories] == ["Dated item about an invented chatbot"]
    assert reasons_for(result, path) == [f"item 2 ('Undated item'): {NO_DATE_REASON}"]


def test_missing_path_is_skipped_and_the_rest_loads():
    missing = FIXTURES / "does-not-exist.md"
    result = load(missing, KITCHEN)
    assert result.skipped == [Skipped(str(missing), "path does not exist")]
    assert len(result.stories) == 1


def test_missing_title_falls_back_to_the_first_sentence():
    result = load(BAD / "no-title.md", KITCHEN)
    story = next(s for s in result.stories if s.origin.endswith("no-title.md"))
    assert story.title.startswith("An invented drone company says its delivery drones")
    assert len(story.title.rstrip("…").split()) <= TITLE_FALLBACK_WORDS
    assert story.notes == ["title inferred from the first sentence (no title given)"]


def test_missing_date_falls_back_to_the_file_name():
    [story] = load(BAD / "2024-01-06-no-date-in-header.md").stories
    assert story.published_at == date(2024, 1, 6)
    assert story.notes == ["date taken from the file name"]


def test_file_over_the_size_limit_is_skipped_naming_both_sizes():
    small = GOOD / "2024-05-20-heading-title.md"
    limit = small.stat().st_size
    result = load(KITCHEN, small, max_file_bytes=limit)
    [reason] = reasons_for(result, KITCHEN)
    assert f"{KITCHEN.stat().st_size:,} bytes" in reason and f"{limit:,}-byte limit" in reason
    assert [s.title for s in result.stories] == ["Pretend voice-clone detector flags synthetic callers"]


def test_parse_document_is_pure_and_routes_by_extension():
    text = KITCHEN.read_text(encoding="utf-8")
    [story] = parse_document(text, "memory:2024-03-05.md", ".md")
    assert story.origin == "memory:2024-03-05.md" and story.published_at == date(2024, 3, 5)


def test_outlet_names_from_hosts():
    assert outlet_from_url("https://www.nytimes.com/2024/01/01/x.html") == "The New York Times"
    assert outlet_from_url("https://edition.cnn.com/x") == "CNN"
    assert outlet_from_url("http://www.wired.co.uk/article/x") == "Wired"
    assert outlet_from_url("https://blog.google/technology/ai/x") == "Google"
    assert outlet_from_url("https://www.technologyreview.com/x") == "MIT Technology Review"
    assert outlet_from_url("https://www.example-news.net:8443/x") == "example-news.net"
    assert outlet_from_url("not a url") == ""


# --- URLs: a real HTTP server on loopback ---------------------------------------------------------------

class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map,
                      ".rss": "application/rss+xml", ".atom": "application/atom+xml"}

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path == "/slow":
            time.sleep(2)                            # longer than the client waits; then just hang up
            return
        if self.path == "/untyped-feed":
            body = (GOOD / "feed.rss").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(GOOD)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_rss_and_atom_urls_load_like_files(server):
    rss, atom = f"{server}/feed.rss", f"{server}/feed.atom"
    result = load(rss, atom, KITCHEN)
    assert result.skipped == []
    assert result.sources_seen == [rss, atom, str(KITCHEN.resolve())]
    titles = by_title(result)
    assert titles["Fictional lab releases a small open model"].origin == rss
    assert titles["Invented benchmark for spreadsheet agents"].published_at == date(2024, 9, 2)
    assert len(result.stories) == 5


def test_url_type_is_sniffed_when_the_server_does_not_say(server):
    result = load(f"{server}/untyped-feed", f"{server}/article.html")
    assert result.skipped == []
    assert {s.title for s in result.stories} == {
        "Fictional lab releases a small open model", "Pretend regulator opens a consultation on AI audits",
        "Invented weather model beats a physics baseline on rainfall"}


def test_network_failures_are_skips_with_reasons(server):
    with socket.socket() as s:                       # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/feed.rss"
    missing, slow = f"{server}/nope.rss", f"{server}/slow"
    result = load(missing, closed, slow, KITCHEN, feed_timeout=0.5)
    assert reasons_for(result, missing) == ["HTTP 404 File not found"]
    assert reasons_for(result, closed)[0].startswith("network error: could not connect")
    assert reasons_for(result, slow) == ["network error: no response within 0.5s (NEWSRAG_FEED_TIMEOUT)"]
    assert len(result.stories) == 1 and result.sources_seen == [str(KITCHEN.resolve())]


# --- the real newsletter digests --------------------------------------------------------------------------

_absent = pytest.mark.usefixtures("digests_dir")       # conftest: skipped when absent, a failure under CI=true


def needs_digests(test):
    """The real digests are large and unlicensed: read from ../shared at test time, never copied."""
    return pytest.mark.slow(_absent(test))
MIN_DIGEST_STORIES = 1700


@pytest.fixture(scope="module")
def digests(digests_dir) -> LoadResult:
    return load_paths([DIGESTS], Settings())


def _digest_range() -> tuple[date, date]:
    dates = [digest_date_for({}, p.name) for p in DIGESTS.glob("*.md")]
    return min(dates) - timedelta(days=URL_DATE_WINDOW_DAYS), max(dates)


def _story(result: LoadResult, file_name: str, title: str = "", url_part: str = ""):
    """The one story of a digest with this exact title or main-URL fragment.

    Long headlines are found by URL fragment so this file never repeats a 10-word run of the digests.
    """
    matches = [s for s in result.stories if Path(s.origin).name == file_name
               and (s.title == title if title else url_part in s.url)]
    assert len(matches) == 1, f"{title or url_part!r} not found once in {file_name}"
    return matches[0]


@needs_digests
def test_digests_yield_enough_dated_linked_stories(digests):
    stories = [s for s in digests.stories if "digest" in s.tags]
    assert len(stories) >= MIN_DIGEST_STORIES
    assert digests.skipped == []
    assert all(s.url.startswith(("http://", "https://")) for s in stories)
    first, last = _digest_range()
    assert all(first <= s.published_at <= last for s in stories)
    assert all(s.text.strip() and s.title.strip() for s in stories)
    others = {Path(s.origin).name for s in digests.stories if "digest" not in s.tags}
    assert others <= {"2021-01-25-100_analysis.md"}               # an article filed among the digests
    per_year = Counter(Path(s.origin).name[:4] for s in stories)
    print("\nstories per year:", dict(sorted(per_year.items())))
    assert all(per_year[str(y)] > 0 for y in range(2018, 2027))


@needs_digests
def test_every_digest_layout_is_recognised():
    counts: Counter = Counter()
    for path in sorted(DIGESTS.glob("*.md")):
        fm = split_front_matter(path.read_text(encoding="utf-8"), salvage=True)
        counts.update(e.layout for e in digest_entries(fm.body) if e.text)
    print("\nstories per layout:", dict(counts))
    assert set(counts) == set(LAYOUTS)
    assert counts["heading-quote"] >= 20 and counts["heading-link"] >= 800
    assert counts["bullet"] >= 1500 and counts["paragraph"] >= 8000


@needs_digests
def test_newest_layout_spot_check(digests):
    musk = _story(digests, "2026-05-25-341.md", url_part="/elon-musk-lawsuit-openai-")
    assert musk.title.startswith("Elon Musk Loses $150 Billion") and musk.title.endswith("Sam Altman")
    assert musk.url.startswith("https://www.nytimes.com/2026/05/18/")       # ' - The New York Times' cut
    assert musk.outlet == "The New York Times" and musk.published_at == date(2026, 5, 18)
    related = musk.urls[1:]
    assert "https://www.bbc.com/news/articles/cewpyv79pw1o" in related
    assert any(u.startswith("https://www.theverge.com/") for u in related)
    assert any(u.startswith("https://techcrunch.com/2026/05/19/") for u in related)
    assert len(musk.sources) == 6 and {"BBC", "The Verge", "TechCrunch"} <= set(musk.outlets)
    assert "top news" in musk.tags and "jury" in musk.text and "**" not in musk.text
    other = _story(digests, "2026-05-25-341.md", "How Chinese short dramas became AI content machines")
    assert other.tags == ["tools", "digest"] and other.published_at == date(2026, 5, 15)


@needs_digests
def test_old_layouts_spot_check(digests):
    brain = _story(digests, "2018-05-14-1.md", "Mysteries of the brain - solved")         # heading + quote
    assert brain.outlet == "Wired" and brain.url.startswith("http://www.wired.co.uk/article/deepmind")
    assert brain.published_at == date(2018, 5, 14) and brain.tags == ["the hype", "digest"]
    dota = _story(digests, "2018-08-13-6.md", url_part="/17655086/dota2-openai-bots")
    assert dota.title.startswith("The OpenAI Dota 2 bots") and dota.outlet == "The Verge"
    assert dota.author == "Vlad Savov" and dota.published_at == date(2018, 8, 6)
    davos = _story(digests, "2019-03-04-16.md", "The Hidden Automation Agenda of the Davos Elite")
    assert davos.published_at == date(2019, 3, 4)          # URL date is 38 days older: the issue date wins
    assert davos.tags == ["mini briefs", "digest"]
    msn = _story(digests, "2020-06-07-68.md", "Microsoft lays off journalists to replace them with AI")
    assert msn.published_at == date(2020, 5, 30) and msn.outlet == "The Verge"
    assert msn.tags == ["advances & business", "digest"]
    robots = _story(digests, "2022-06-06-170.md", "Robots Pick Up More Work at Busy Factories")
    assert robots.outlet == "The Wall Street Journal" and robots.tags == ["business", "digest"]
    assert not any(Path(s.origin).name == "2020-06-07-68.md" and "podcast" in s.url for s in digests.stories)


@needs_digests
def test_digest_quirks_are_tolerated(digests):
    names = {Path(s.origin).name for s in digests.stories}
    # a fenced front matter, a broken excerpt line, and an impossible file-name date (2021-2-29)
    assert {"2025-07-28-317.md", "2024-02-19-258.md", "2021-2-29-105.md"} <= names
    assert {s.published_at for s in digests.stories if Path(s.origin).name == "2021-2-29-105.md"} <= {
        date(2021, 3, 1) - timedelta(days=d) for d in range(URL_DATE_WINDOW_DAYS + 1)}


@needs_digests
def test_story_ids_are_unique_or_real_repeats(digests):
    groups = defaultdict(list)
    for s in digests.stories:
        groups[s.id].append(s)
    for story_id, group in groups.items():
        if len(group) > 1:
            assert len({canonical_url(s.url) for s in group}) == 1, story_id
            assert len({s.origin for s in group}) == len(group), f"{story_id} repeated within one digest"
    repeats = sum(len(g) - 1 for g in groups.values())
    assert repeats < 0.05 * len(digests.stories)


def test_a_folders_readme_is_documentation_not_a_skipped_story(tmp_path):
    """corpus/README.md describes the corpus: walking the folder must not report it as a story that failed
    for lack of a date on every run. Named as a path of its own, a README is read like any file."""
    (tmp_path / "README.md").write_text("# About these stories\n\nOur own summaries of AI news.\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "readme.txt").write_text("notes for editors\n")
    (tmp_path / "story.md").write_text('---\ntitle: "Test lab ships a model"\npublished: 2026-03-01\n---\n'
                                       "Test lab shipped a small model on March 1, 2026.\n")
    result = load(tmp_path)
    assert [s.title for s in result.stories] == ["Test lab ships a model"] and result.skipped == []
    explicit = load(tmp_path / "README.md")
    assert not explicit.stories and [s.path for s in explicit.skipped] == [str(tmp_path / "README.md")]
