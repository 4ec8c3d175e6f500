"""Suggest a category and priority for a new ticket from the keywords of the domain config.

Each category scores one point per keyword found in the text and two per keyword found in the
subject (case-insensitive, on word boundaries; a keyword counts once per place). The best score
wins; ties go to the category listed first. No match gives ``domain.fallback_category``. The
priority is the category's default, raised to the highest priority (the first of
``domain.priorities``) when an urgency keyword is present too. Staff confirm or change both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from lpse_helpdesk.domain.model import DomainConfig

__all__ = ["Suggestion", "keyword_pattern", "suggest"]


@dataclass(frozen=True)
class Suggestion:
    category: str
    priority: str
    matched: tuple[str, ...]  # the category keywords found, then the urgency keywords found


@lru_cache(maxsize=1024)
def keyword_pattern(keyword: str) -> re.Pattern[str] | None:
    """A case-insensitive pattern for a keyword, with word boundaries where the keyword has
    word characters at its ends. Inner whitespace matches any whitespace; trailing whitespace
    in the keyword (e.g. ``"jam "``) requires whitespace after the word."""
    words = keyword.split()
    if not words:
        return None
    body = r"\s++".join(re.escape(word) for word in words)  # possessive: linear on long runs
    stripped = keyword.strip()
    start = r"(?<!\w)" if re.match(r"\w", stripped) else ""
    if keyword != keyword.rstrip():
        end = r"(?=\s)"
    elif re.search(r"\w$", stripped):
        end = r"(?!\w)"
    else:
        end = ""
    return re.compile(start + body + end, re.IGNORECASE)


def _fold(text: str) -> str:
    """Case-folded text for the substring prefilter (Turkish dotted I folded like the regex)."""
    return text.casefold().replace("i\u0307", "i")


_WORD = re.compile(r"\w+")
#: Every ASCII character that is not a word character (``\w``), as a blank.
_ASCII_BLANKS = {i: " " for i in range(128) if not (chr(i).isalnum() or chr(i) == "_")}
#: Characters the regex takes for an ASCII letter that ``str.lower`` does not turn into it
#: (or turns into two characters): dotted capital I, dotless i, long s.
_NOT_LOWERED = ("\u0130", "\u0131", "\u017f")


@dataclass(frozen=True, slots=True)
class _Keyword:
    """What the search needs of one keyword, made once."""

    keyword: str
    pattern: re.Pattern[str] | None
    words: tuple[str, ...]  # case-folded, for the substring prefilter
    runs: frozenset[str] | None  # ASCII keywords: their lower-cased runs of word characters
    head: str | None  # ASCII keywords: the lower-cased first word (where a match begins)


@lru_cache(maxsize=16)
def _compiled(keywords: tuple[str, ...]) -> tuple[_Keyword, ...]:
    result = []
    for keyword in keywords:
        words = keyword.split()
        ascii_ = keyword.isascii() and bool(words)
        result.append(
            _Keyword(
                keyword=keyword,
                pattern=keyword_pattern(keyword),
                words=tuple(_fold(word) for word in words),
                runs=frozenset(_WORD.findall(keyword.lower())) if ascii_ else None,
                head=words[0].lower() if ascii_ else None,
            )
        )
    return tuple(result)


class _Text:
    """One text to look for keywords in, with what the prefilters need, made once.

    A keyword's regex can only match where each run of word characters of the keyword is a
    whole run of word characters of the text (the regex has word boundaries at its ends, and
    the keyword's other characters are ASCII punctuation or blanks, which match only
    themselves or blanks). So an ASCII keyword is tried only when all its runs are among the
    text's runs: a set lookup instead of a substring search over the whole text. The one
    character that the regex takes for an ASCII letter but that case-folds to something else,
    the dotless i, sends its (rare) texts to the substring prefilter.
    """

    __slots__ = ("_folded", "lowered", "runs", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._folded: str | None = None
        #: ``text.lower()`` when each of its characters stands where the text's does and is
        #: an ASCII letter exactly when the regex (IGNORECASE) takes the text's character for
        #: that letter: all text without dotted capital I, dotless i and long s.
        self.lowered: str | None
        self.runs: set[str] | None
        if text.isascii():  # casefold is lower for ASCII
            self.lowered = text.lower()
            self.runs = set(self.lowered.translate(_ASCII_BLANKS).split())
            return
        self.lowered = None if any(c in text for c in _NOT_LOWERED) else text.lower()
        if "\u0131" in text:
            self.runs = None
        else:
            self.runs = {_fold(run) for run in set(_WORD.findall(text))}

    @property
    def folded(self) -> str:
        if self._folded is None:
            self._folded = _fold(self.text)
        return self._folded

    def found(self, keywords: tuple[_Keyword, ...]) -> set[str]:
        """The keywords whose regex matches this text."""
        runs = self.runs
        if runs is None:
            return {keyword.keyword for keyword in keywords if self._has(keyword)}
        # The set lookup inline first: most keywords stop there (the same as _has).
        return {
            keyword.keyword
            for keyword in keywords
            if (keyword.runs is None or keyword.runs <= runs) and self._has(keyword)
        }

    def _has(self, keyword: _Keyword) -> bool:
        """The regex decides; a prefilter first skips the keywords that cannot match.

        A mail is checked against some 200 keywords: running each regex over the whole text
        cost about 7 ms a mail, a substring check per keyword about 1 ms; the set lookup takes
        microseconds, and the regex then runs only where the keyword's first word stands.
        """
        pattern = keyword.pattern
        if pattern is None:
            return False
        if keyword.runs is not None and self.runs is not None:
            if not keyword.runs <= self.runs:
                return False
        elif not all(word in self.folded for word in keyword.words):
            return False
        head, lowered = keyword.head, self.lowered
        if head is None or lowered is None:
            return pattern.search(self.text) is not None
        at = lowered.find(head)
        while at >= 0:
            if pattern.match(self.text, at):
                return True
            at = lowered.find(head, at + 1)
        return False


def suggest(subject: str, text: str, domain: DomainConfig) -> Suggestion:
    """The suggested category and priority for a mail's subject and (stripped) text."""
    everything = [k for category in domain.categories for k in category.keywords]
    keywords = _compiled(tuple(dict.fromkeys([*everything, *domain.urgency_keywords])))
    in_subject, in_text = _Text(subject).found(keywords), _Text(text).found(keywords)
    best_code = domain.fallback_category
    best_score = 0
    best_matched: tuple[str, ...] = ()
    for category in domain.categories:
        score = 0
        matched: list[str] = []
        for keyword in category.keywords:
            subject_hit, text_hit = keyword in in_subject, keyword in in_text
            if subject_hit or text_hit:
                score += 2 * subject_hit + text_hit
                matched.append(keyword)
        if score > best_score:
            best_code, best_score, best_matched = category.code, score, tuple(matched)
    try:
        priority = domain.category(best_code).default_priority
    except KeyError:
        priority = domain.priorities[-1].code if domain.priorities else ""
    urgent = tuple(
        keyword
        for keyword in domain.urgency_keywords
        if keyword in in_subject or keyword in in_text
    )
    if urgent and domain.priorities:
        priority = domain.priorities[0].code
    matched_all = best_matched + tuple(keyword.strip() for keyword in urgent)
    return Suggestion(category=best_code, priority=priority, matched=matched_all)
