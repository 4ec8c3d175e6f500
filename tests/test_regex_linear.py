"""Every regex that reads mail text or headers runs in linear time (issue #10).

Each pattern is fed the adversarial inputs that made its earlier form backtrack (long runs of
blanks, of blank lines, of brackets without their partner...) at a size n and at 8n. Linear
time grows about 8-fold; the earlier forms grew 64-fold or more. The assertion allows 24-fold,
so a loaded machine does not make it flake, while a quadratic pattern cannot pass. Timings are
the best of several runs, and a pattern fails only when three attempts in a row grow too fast
(a stall of the machine spoils one attempt; a super-linear pattern spoils all). When plainly
linear work over the same inputs grows more than 8-fold at that moment (memory caches late in
a long run), the allowance grows with it.
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable

import pytest

from lpse_helpdesk.bridge import compose, facts, hygiene, parsing, quotes, suggest, tags
from lpse_helpdesk.bridge.suggest import keyword_pattern
from lpse_helpdesk.domain.loader import load_domain

N = 4000
GROWTH = 8
ATTEMPTS = 3
ALLOWED = 24.0

Use = Callable[[re.Pattern[str], str], object]
_NO_PATTERN = re.compile("")  # for the cases that time a function rather than one regex
_DOMAIN = load_domain()


def _without_gc(call: Callable[[], object]) -> object:
    """Run a timed function without the cyclic collector (a collection of the test process's
    heap inside one timing is not the function's time)."""
    gc.disable()
    try:
        return call()
    finally:
        gc.enable()


def _search_all(pattern: re.Pattern[str], text: str) -> object:
    return list(pattern.finditer(text))


def _match(pattern: re.Pattern[str], text: str) -> object:
    return pattern.match(text)


BLANKS = [" ", "\t", "\n", " \n", "\r\n"]


def _cases() -> list[tuple[str, re.Pattern[str], Use, Callable[[int], str]]]:
    cases: list[tuple[str, re.Pattern[str], Use, Callable[[int], str]]] = []

    def add(name: str, pattern: re.Pattern[str], use: Use, *makers: Callable[[int], str]) -> None:
        for index, maker in enumerate(makers):
            cases.append((f"{name}-{index}", pattern, use, maker))

    def blanks(head: str, tail: str = "!") -> list[Callable[[int], str]]:
        def run_of(b: str) -> Callable[[int], str]:
            return lambda n: head + b * n + tail

        return [run_of(b) for b in BLANKS]

    add(
        "parsing._ANGLE_ID",
        parsing._ANGLE_ID,
        _search_all,
        *blanks("<"),
        lambda n: "<" * n,
        lambda n: "< " * n,
        lambda n: "<a" + " a" * n,
    )
    add("parsing._TAG", parsing._TAG, _search_all, lambda n: "<" * n, lambda n: "< a" * n)
    add(
        "parsing._ENCODED_WORD",
        parsing._ENCODED_WORD,
        _search_all,
        lambda n: "=?" * n,
        lambda n: "=?utf-8?q?" + "a" * n,
        lambda n: "=?a?b?" * n,
    )
    add("parsing._CID_REF", parsing._CID_REF, _search_all, lambda n: "cid:" * n)
    for name in ("_SIMPLE_CONTENT_TYPE", "_SIMPLE_DISPOSITION"):
        add(
            f"parsing.{name}",
            getattr(parsing, name),
            _match,
            lambda n: "text/plain" + "; a=b" * n + "!",
            lambda n: "text/plain" + '; a="' + "b" * n,
            lambda n: "a" * n + "/",
            lambda n: "a/" + "a" * n + ";",
            *blanks("text/plain;"),
        )
    add(
        "parsing._HEAD",
        parsing._HEAD,
        _match,
        lambda n: "a:\n" * n + "x",
        lambda n: "From " * n,
        lambda n: "a" * n + ":",
        lambda n: "\t" * n,
        lambda n: "X: " + " " * n + "\r",
        lambda n: "a:" + "\r" * n,
    )
    add(
        "parsing._SIMPLE_PARAM",
        parsing._SIMPLE_PARAM,
        _search_all,
        lambda n: "; a=b" * n,
        lambda n: ';a="' * n,
        lambda n: "; " + "a" * n,
    )
    add("parsing._SPACES", parsing._SPACES, _search_all, *blanks("a"))
    add("parsing._FOLD", parsing._FOLD, _search_all, *blanks("a"))
    add("parsing._MACHINE_LOCAL", parsing._MACHINE_LOCAL, _match, lambda n: "noreply" + "-" * n)
    add(
        "hygiene._TEXT_MESSAGE_ID",
        hygiene._TEXT_MESSAGE_ID,
        _search_all,
        *blanks(""),
        *blanks("> Message-ID:"),
        *blanks("Message-ID", "<a"),
    )
    add(
        "hygiene._ADDRESS",
        hygiene._ADDRESS,
        _search_all,
        lambda n: "a" * n,
        lambda n: "a." * n,
        lambda n: "a@" * n + " ",
        *blanks("a@"),
    )
    add("hygiene._OUT_OF_OFFICE", hygiene._OUT_OF_OFFICE, _match, *blanks(""))
    add("hygiene._BOUNCE_SUBJECT", hygiene._BOUNCE_SUBJECT, _match, *blanks(""))
    add(
        "facts._CODE",
        facts._CODE,
        _search_all,
        *blanks("kode tender"),
        lambda n: "kode tender" + " - " * n,
        lambda n: "kode tender " + "no " * n,
        lambda n: "kode tender 12345" + " " * n + "-",
    )
    # _MORE and _PREFIX are only ever matched at one position (after a code, after a prefix).
    add("facts._MORE", facts._MORE, _match, *blanks(""), *blanks(", "))
    add("facts._MOBILE", facts._MOBILE, _search_all, lambda n: "08" + "12-" * n, *blanks("+62"))
    add(
        "facts._LANDLINE", facts._LANDLINE, _search_all, lambda n: "(021" + "1-" * n, *blanks("021")
    )
    add("facts._URL_CODE", facts._URL_CODE, _search_all, lambda n: "/lelang" * n)
    add(
        "facts._SIGNATURE_START",
        facts._SIGNATURE_START,
        _search_all,
        *blanks(""),
        *blanks("--"),
        *blanks("salam"),
        *blanks("hormat"),
    )
    add(
        "facts._SIGNATURE_NEXT",
        facts._SIGNATURE_NEXT,
        _search_all,
        lambda n: "\n" * n,
        *blanks("\n"),
        *blanks("\nsalam"),
        *blanks("\nhormat"),
    )
    # The search functions that try those regexes only at some positions (issue #14).
    add(
        "facts.card_facts",
        _NO_PATTERN,
        lambda _, text: _without_gc(lambda: facts.card_facts(text[:40], text)),
        *blanks("kode tender"),
        lambda n: "kode tender " + "no " * n,
        lambda n: "id " * n,
        lambda n: "no" * n,
        lambda n: "\n" * n + "salam",
        lambda n: "hormat" + "\n" * n + "kami",
        lambda n: "0812 " * n,
    )
    add("suggest._WORD", suggest._WORD, _search_all, lambda n: "a" * n, lambda n: "a " * n)
    add(
        "suggest.suggest",
        _NO_PATTERN,
        lambda _, text: _without_gc(lambda: suggest.suggest(text[:40], text, _DOMAIN)),
        *blanks("gagal"),
        lambda n: "gagal " * n,
        lambda n: "tidak " * n + "bisa login",
        lambda n: "lupa" + " " * n + "password",
        lambda n: "\u0130" + "gagal " * n,
    )
    add(
        "tags._PREFIX",
        tags._PREFIX,
        _match,
        *blanks(""),
        *blanks("re"),
        *blanks("re:"),
        lambda n: "re: " * n + "x",
    )
    add("tags._FORWARD_PREFIX", tags._FORWARD_PREFIX, _match, *blanks("fwd"), *blanks(""))
    add(
        "tags.find_ticket_number",
        tags._tag_pattern("LPSE"),
        _search_all,
        *blanks("["),
        *blanks("[LPSE"),
        *blanks("[LPSE-2026-"),
        lambda n: "[" * n,
    )
    add(
        "tags._number_pattern",
        tags._number_pattern("LPSE-2026-00001"),
        _search_all,
        *blanks("[LPSE"),
        lambda n: "[" * n,
    )
    add(
        "quotes._ATTRIBUTION",
        quotes._ATTRIBUTION,
        _match,
        *blanks("On Monday someone wrote"),
        *blanks("Pada hari menulis"),
        *blanks("on "),
    )
    add("quotes._HEADER_FROM", quotes._HEADER_FROM, _match, *blanks("From:"), *blanks(""))
    add("quotes._HEADER_OTHER", quotes._HEADER_OTHER, _match, *blanks("Sent"), *blanks(""))
    add("quotes._ORIGINAL", quotes._ORIGINAL, _match, lambda n: "-" * n, *blanks("-----"))
    add("quotes._FORWARD", quotes._FORWARD, _match, lambda n: "-" * n, *blanks("---"))
    add(
        "quotes._FOOTER",
        quotes._FOOTER,
        _match,
        *blanks("Sent from my iPhone"),
        *blanks("sent from"),
        *blanks("Get Outlook for Android"),
    )
    add("quotes._QUOTED", quotes._QUOTED, _match, *blanks(""))
    keyword = keyword_pattern("gagal unggah")
    assert keyword is not None
    add("suggest.keyword_pattern", keyword, _search_all, *blanks("gagal"), lambda n: "gagal " * n)
    add(
        "compose._MESSAGE_ID",
        compose._MESSAGE_ID,
        lambda pattern, text: pattern.fullmatch(text),
        lambda n: "a@" * n + " ",
        lambda n: "<" + "@" * n + "<",
    )
    return cases


CASES = _cases()


def _best(use: Use, pattern: re.Pattern[str], text: str) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        use(pattern, text)
        best = min(best, time.perf_counter() - started)
        if best > 2.0:
            break
    return best


@pytest.mark.parametrize(("name", "pattern", "use", "maker"), CASES, ids=[c[0] for c in CASES])
def test_regex_time_grows_linearly(
    name: str, pattern: re.Pattern[str], use: Use, maker: Callable[[int], str]
) -> None:
    ratios = []
    # A busy machine can stall one measurement; a super-linear form fails every attempt
    # (the earlier forms grew 64-fold or more), a stall only one.
    for _ in range(ATTEMPTS):
        small = _best(use, pattern, maker(N))
        assert small < 1.0, f"{name}: {small:.2f} s on {N} characters"
        large = _best(use, pattern, maker(N * GROWTH))
        # Below 2 ms even the large input is too fast to tell anything from noise.
        if large < 0.002:
            return
        ratios.append(large / max(small, 1e-5))
        if ratios[-1] < ALLOWED * _linear_growth(maker) / GROWTH:
            return
    shown = ", ".join(f"{r:.0f}x" for r in ratios)
    raise AssertionError(f"{name}: {GROWTH}x the input took {shown} the time")


_WORDS = re.compile(r"\w+")


def _linear_growth(maker: Callable[[int], str]) -> float:
    """How much a plainly linear pass over the same two inputs grows right now (at least
    GROWTH): late in a long test run, memory caches and the allocator make a large input
    cost more per character than a small one, for linear code as much as for ours."""

    def linear(_: re.Pattern[str], text: str) -> object:
        return _without_gc(lambda: {w.casefold() for w in _WORDS.findall(text)})

    small = _best(linear, _NO_PATTERN, maker(N))
    large = _best(linear, _NO_PATTERN, maker(N * GROWTH))
    return max(float(GROWTH), large / max(small, 1e-5))
