"""The shortcuts that made parsing cheaper (issue #14) give exactly what the slow ways give.

Each shortcut is compared, on random and mutated input, with the plain computation it stands
for: the standard header parser, the keyword regexes run over the whole text, and
``tender_codes`` / ``phone_numbers`` computed separately.
"""

from __future__ import annotations

import email.message
import email.policy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpse_helpdesk.bridge import facts, parsing, quotes
from lpse_helpdesk.bridge.suggest import _compiled, _Text, keyword_pattern
from lpse_helpdesk.domain.loader import load_domain

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_HEADER_PIECES = st.sampled_from(
    [
        "text/plain", "multipart/mixed", "application/pdf", "Text/HTML", "attachment", "inline",
        "/", ";", "; ", " ", "=", '"', "charset", "utf-8", "boundary", "name", "filename",
        "===", "_", ".", "-", "+", "a", "Z", "0", "x-y", "*", "*0*", "'", "(", ")", "\\", "?",
        "=?utf-8?q?a?=", "\t", "\r\n ", ",", "é", "Charset", "flowed", "bukti_123.pdf",
        "base64", "7bit", "quoted-printable", "BASE64",
    ]
)  # fmt: skip


@SETTINGS
@given(
    st.sampled_from(
        ["Content-Type", "content-disposition", "CONTENT-TYPE", "Content-Transfer-Encoding"]
    ),
    st.lists(_HEADER_PIECES, max_size=12).map("".join),
)
def test_simple_mime_headers_read_as_the_standard_parser_reads_them(name: str, value: str) -> None:
    value = value.lstrip(" \t")  # as the parser hands header values over
    fast = parsing._simple_mime_header(name, value)
    if fast is not None:
        assert fast == str(email.policy.default.header_factory(name, value))


def test_common_mime_headers_take_the_shortcut() -> None:
    for name, value in [
        ("Content-Type", 'multipart/mixed; boundary="===============7211761852492316472=="'),
        ("Content-Type", "text/plain; charset=utf-8; format=flowed"),
        ("Content-Disposition", 'attachment; filename="bukti_12345678.pdf"'),
    ]:
        fast = parsing._simple_mime_header(name, value)
        assert fast is not None
        assert fast == str(email.policy.default.header_factory(name, value))
    assert parsing._simple_mime_header("Content-Type", 'text/plain; a="1"; a="2"') is None
    assert parsing._simple_mime_header("Subject", "text/plain") is None


_DOMAIN = load_domain()
_KEYWORDS = [k for c in _DOMAIN.categories for k in c.keywords] + list(_DOMAIN.urgency_keywords)
_TEXT_PIECES = st.sampled_from(
    [
        *_KEYWORDS, "İzin", "ı", "ſ", "\u212a", "ß", "\u0345", "\u00a0", "_", "-", ".", " ",
        "\n", "I", "K", "S", "\u0307", "x", "5", "e—katalog", "LOGIN", "Tidak",
    ]
)  # fmt: skip


@SETTINGS
@given(st.lists(_TEXT_PIECES, max_size=16).map("".join))
def test_keywords_found_as_their_regex_finds_them(text: str) -> None:
    keywords = (*_KEYWORDS, "İzin", "straße", "ab_c", "(spse)", "--", " jam  ")
    expected = set()
    for keyword in keywords:
        pattern = keyword_pattern(keyword)
        if pattern is not None and pattern.search(text):
            expected.add(keyword)
    assert _Text(text).found(_compiled(tuple(dict.fromkeys(keywords)))) == expected


_FACT_PIECES = st.sampled_from(
    [
        "kode tender: 12345678", "Kode Paket 98765432", "ID RUP 31234567", "no. lelang: 1234567",
        "tender 10012345000", "kode tender 1234567, 2345678 dan 3456789", "0812-3456-7890",
        "+62 812 3456 7890", "62812345678", "(021) 5551234", "021-5551234", "+62-274-512345",
        "HP/WA 0812-1111-2222", "spse.go.id/eproc4/lelang/10012345000/x", "kode", "tender",
        "paket", "id", "no", " ", "\n", "\n\n", ",", "x", "1", "0", "İ", "ı", "ſ", "\u212a",
        "Salam,", "Hormat kami,", "terima kasih", "--", "Telp.", "cp:", "\n" * 5,
    ]
)  # fmt: skip


@SETTINGS
@given(
    st.lists(_FACT_PIECES, max_size=8).map("".join),
    st.lists(_FACT_PIECES, max_size=30).map("".join),
    st.integers(1, 40),
)
def test_card_facts_are_tender_codes_and_phone_numbers(subject: str, text: str, times: int) -> None:
    text = text * times  # long texts: the signature is looked for near the end only
    expected = (facts.tender_codes(f"{subject}\n{text}"), facts.phone_numbers(text))
    assert facts.card_facts(subject, text) == expected
    # and those two read their regexes' matches as finditer gives them
    assert [m.span() for m in facts._code_matches(text)] == [
        m.span() for m in facts._CODE.finditer(text)
    ]
    signature = next(
        (m.start() for m in facts._SIGNATURE_START.finditer(text) if m.start() >= len(text) - 1200),
        len(text),
    )
    assert facts._signature_start(text) == signature


_LINES = st.sampled_from(
    [
        "Pada Sen, 1 Des 2026 Budi <b@x.id> menulis:", "On Mon, Dec 1, 2026 Budi wrote:",
        "> quoted", "-----Original Message-----", "---------- Forwarded message ---------",
        "From: Budi", "Dari: Budi", "Sent: Monday", "Kepada: y", "Subject: z", "**From:** x",
        "Sent from my iPhone", "Get Outlook for Android", "ſent from my iPhone", "", " ",
        "Selamat siang", "teks biasa", "_____", "Begin forwarded message:", "\u00a0> x",
    ]
)  # fmt: skip


@SETTINGS
@given(st.lists(_LINES, max_size=14), st.booleans())
def test_quote_rules_skip_only_lines_they_cannot_apply_to(
    lines: list[str], forwarded: bool
) -> None:
    for line in lines:
        stripped = line.strip()
        if stripped and stripped[0] not in quotes._LINE_STARTS:
            assert not any(
                (
                    quotes._FOOTER.match(stripped),
                    quotes._FORWARD.match(stripped),
                    quotes._ATTRIBUTION_START.match(stripped),
                    quotes._QUOTED.match(line),
                    quotes._ORIGINAL.match(stripped),
                    quotes._HEADER_FROM.match(line),
                )
            )


_HEAD_LINES = st.sampled_from(
    [
        "From: a@b.c", "Subject: x", "From a@b Mon", "X-A:b", " cont", "\tcont", "not a header",
        "", "Content-Type: text/plain", "Content-Type: multipart/mixed; boundary=x",
        "Content-Type: message/rfc822", ":x", "A B: c", "\x00: y", "\xe9: z", "--x", "body",
        "Content-Transfer-Encoding: base64", "aGVsbG8=",
    ]
)  # fmt: skip


def _message_state(message: email.message.Message) -> object:
    payload = message.get_payload()
    return (
        message.get_unixfrom(),
        list(message.raw_items()),
        [type(d).__name__ for d in message.defects],
        [_part_state(p) for p in payload] if isinstance(payload, list) else payload,
    )


def _part_state(part: email.message.Message | str) -> object:
    assert isinstance(part, email.message.Message)  # a multipart payload holds messages only
    return _message_state(part)


@SETTINGS
@given(st.lists(st.tuples(_HEAD_LINES, st.sampled_from(["\r\n", "\n", "\r"])), max_size=12))
def test_single_part_mail_is_read_as_the_standard_parser_reads_it(
    lines: list[tuple[str, str]],
) -> None:
    raw = "".join(line + end for line, end in lines).encode("utf-8", "surrogateescape")
    for policy in (parsing._POLICY, email.policy.compat32):
        expected = _message_state(email.message_from_bytes(raw, policy=policy))
        assert _message_state(parsing._message_from_bytes(raw, policy)) == expected
