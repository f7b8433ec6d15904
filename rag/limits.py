"""Caps on everything a request can carry, checked in one place for every interface.

The CLI, the Gradio app (its `/ask` endpoint and chat handlers), the Python API (NewsBot checks what it
is handed) and the HTTP APIs share these checks, so a request that one of them refuses gets the same
message from all of them. Every cap is a Settings field (NEWSRAG_MAX_...), because a deployment that
lets 10,000 filter values through learns about it from Chroma: its native filter code failed with
"Expression tree is too large" at 5,000 outlets and crashed the process at 10,000.

A cap that is exceeded is an error with the field, what was sent and the limit -- never a silent
truncation, which would answer a different question than the one asked.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Sequence

from rag.records import Filters
from rag.settings import Settings


class RequestError(ValueError):
    """A request field is malformed or over its cap; the message says which, and what would work."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def parse_day(value: Any, field: str) -> date | None:
    """'' -> None; 'YYYY-MM-DD' (or a date/datetime/timestamp) -> date; else RequestError with a friendly text."""
    if value is None:
        return None
    if isinstance(value, date):
        return value if type(value) is date else value.date()  # datetime -> date
    if isinstance(value, bool):
        raise RequestError(field, f"'{value}' is not a date for '{field}': use YYYY-MM-DD, e.g. 2026-01-31.")
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(float(value), tz=timezone.utc).date()
        except (OverflowError, OSError, ValueError):
            raise RequestError(field, f"{value} is not a timestamp for '{field}': use YYYY-MM-DD.") from None
    s = str(value).strip()
    if not s:
        return None
    shown = s if len(s) <= 40 else s[:40] + "..."
    if len(s) > 40:
        raise RequestError(field, f"'{shown}' is not a date for '{field}': use YYYY-MM-DD, e.g. 2026-01-31.")
    try:
        return date.fromisoformat(s[:10])
    except ValueError:
        raise RequestError(field, f"'{shown}' is not a date for '{field}': use YYYY-MM-DD, e.g. 2026-01-31.") from None


def check_k(k: Any, settings: Settings) -> int:
    """How many stories a request wants listed: a whole number from 1 to `max_k`."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise RequestError("k", f"'k' must be a whole number, not {type(k).__name__}.")
    if not 1 <= k <= settings.max_k:
        raise RequestError("k", f"'k' is {k}; it must be between 1 and {settings.max_k}.")
    return k


def check_range(since: date | None, until: date | None) -> None:
    if since and until and since > until:
        raise RequestError("since", f"The date range is empty: 'since' ({since}) is after 'until' ({until}).")


def check_names(values: Any, field: str, settings: Settings) -> list[str]:
    """A list of outlet or tag names: at most `max_filter_values` of them, each at most
    `max_filter_value_chars` long; blanks dropped, repeats merged, order kept."""
    if values is None or values == "":
        return []
    if isinstance(values, (str, int, float)) and not isinstance(values, bool):
        values = [values]
    if not isinstance(values, (list, tuple)):
        raise RequestError(field, f"'{field}' must be a list of names, not {type(values).__name__}.")
    limit = settings.max_filter_values
    if len(values) > limit:
        raise RequestError(field, f"Too many {field}: {len(values)} given, the limit is {limit}. "
                                  f"Pick the {field} you care about most.")
    out: list[str] = []
    for v in values:
        if v is None or v == "":
            continue
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise RequestError(field, f"Each of '{field}' must be a name, not {type(v).__name__}.")
        name = " ".join(str(v).split())
        if len(name) > settings.max_filter_value_chars:
            raise RequestError(field, f"A name in '{field}' is {len(name)} characters long; the limit is "
                                      f"{settings.max_filter_value_chars}.")
        if name and name not in out:
            out.append(name)
    return out


def make_filters(since: Any, until: Any, outlets: Any, tags: Any, settings: Settings) -> Filters:
    """Filters from raw request fields (strings, lists, whatever a client sent), every field checked."""
    s, u = parse_day(since, "since"), parse_day(until, "until")
    check_range(s, u)
    return Filters(since=s, until=u, outlets=check_names(outlets, "outlets", settings),
                   tags=check_names(tags, "tags", settings))


def check_filters(filters: Filters | None, settings: Settings) -> Filters | None:
    """The same checks for a Filters object handed to the Python API or built by the CLI."""
    if filters is None:
        return None
    return make_filters(filters.since, filters.until, filters.outlets, filters.tags, settings)


def message_parts(content: Any) -> list[str]:
    """The text of a chat message's content: a string, or OpenAI/Gradio's list of parts ({"text": ...})."""
    if isinstance(content, list):
        return [str(c.get("text", "")) if isinstance(c, dict) else str(c) for c in content]
    return [str(content or "")]


def _history_text(item: Any) -> list[str]:
    if isinstance(item, dict):
        return message_parts(item.get("content"))
    if isinstance(item, (list, tuple)):
        return [str(x or "") for x in item]
    return [str(item)]


def check_history(history: Any, settings: Settings) -> Any:
    """At most `max_history_turns` turns (a turn is a (question, answer) pair or two role messages) and
    `max_history_chars` characters in all; the history itself is returned unchanged."""
    if not history:
        return history
    if not isinstance(history, (list, tuple)):
        raise RequestError("history", f"The conversation history must be a list of turns, not "
                                      f"{type(history).__name__}.")
    messages = sum(1 for h in history if isinstance(h, dict))
    turns = (len(history) - messages) + (messages + 1) // 2
    if turns > settings.max_history_turns:
        raise RequestError("history", f"The conversation history has {turns} turns; the limit is "
                                      f"{settings.max_history_turns}. Send only the recent turns.")
    size = sum(len(t) for h in history for t in _history_text(h))
    if size > settings.max_history_chars:
        raise RequestError("history", f"The conversation history is {size} characters long; the limit is "
                                      f"{settings.max_history_chars}. Send only the recent turns.")
    return history


def recent_history(pairs: Sequence[tuple[str, str]], settings: Settings) -> list[tuple[str, str]]:
    """The newest turns of our own chat state that fit the history caps: a long chat keeps working,
    it just stops remembering its oldest turns (the follow-up rewriter only reads the last few)."""
    out: list[tuple[str, str]] = []
    size = 0
    for q, a in reversed(list(pairs)[-settings.max_history_turns:]):
        size += len(q) + len(a)
        if size > settings.max_history_chars:
            break
        out.append((q, a))
    return out[::-1]


def clip_feedback(value: Any, settings: Settings) -> str:
    """The free-form part of a feedback event (what the client says it liked), as text within
    `max_feedback_chars`. The rest of a feedback line comes from our own records of the turn."""
    import json

    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    limit = settings.max_feedback_chars
    if len(text) > limit:
        raise RequestError("feedback", f"The feedback is {len(text)} characters long; the limit is {limit}.")
    return text


def feedback_room(current_bytes: int, line_bytes: int, settings: Settings) -> bool:
    """Whether one more feedback line fits under `max_feedback_file_bytes`."""
    return current_bytes + line_bytes <= settings.max_feedback_file_bytes
