"""Fuzzing parse_mail (issue #10): random bytes and mutated real mails from the corpus. It
never raises, and every mail is prepared well within its budget by the parsing process."""

from __future__ import annotations

from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpse_helpdesk.bridge.parse_worker import OverBudget, ParseFailed, ParseWorker
from lpse_helpdesk.bridge.parsing import ParsedMail, parse_mail
from lpse_helpdesk.bridge.prepare import prepare
from lpse_helpdesk.domain.loader import load_domain
from tests.corpus import OWN_ADDRESSES, build


@cache
def _corpus() -> tuple[bytes, ...]:
    return tuple(mail.raw for mail in build())


_NASTY = [
    b" " * 5000,
    b"\r\n" * 3000,
    b"\t",
    b"<",
    b">",
    b"=?",
    b"?=",
    b"--",
    b":",
    b"\x00",
    b"\xff\xfe",
    b"Content-Type: multipart/mixed; boundary=x\r\n",
    b"--x\r\n",
    b"\r\n\r\n",
    b"=\r\n",
    b"Message-ID: <",
    b"From: ",
    b"Subject: Re: ",
    b'charset="utf-7"',
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(_corpus())))
    for _ in range(draw(st.integers(1, 6))):
        choice = draw(st.integers(0, 3))
        at = draw(st.integers(0, len(raw)))
        if choice == 0:
            raw[at:at] = draw(st.sampled_from(_NASTY)) * draw(st.integers(1, 40))
        elif choice == 1:
            raw[at:at] = draw(st.binary(max_size=200))
        elif choice == 2:
            end = draw(st.integers(at, min(len(raw), at + 500)))
            del raw[at:end]
        else:
            raw = raw[: draw(st.integers(0, len(raw)))]
    return bytes(raw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=4000), mutated()))
def test_parse_mail_never_raises(raw: bytes) -> None:
    mail = parse_mail(raw, max_bytes=64 * 1024)
    assert isinstance(mail, ParsedMail) and mail.message_id
    # The rest of the preparation reads the same hostile text.
    prepare(raw, 64 * 1024, OWN_ADDRESSES, load_domain())


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=8))
def test_prepared_within_the_budget_in_the_parsing_process(raws: list[bytes]) -> None:
    worker = _worker()
    outcomes = worker.prepare(raws)
    assert len(outcomes) == len(raws)
    assert not any(isinstance(o, OverBudget | ParseFailed) for o in outcomes)


@cache
def _worker() -> ParseWorker:
    worker = ParseWorker(64 * 1024, frozenset(OWN_ADDRESSES), load_domain(), budget=10)
    worker.start()
    return worker
