"""Mail-loop rules: addresses we never write to, and the hourly cap of automatic mail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lpse_helpdesk.bridge.loops import canonical_address, over_hourly_cap, refusal_reason

OWN = ("helpdesk@lpse.contoh.go.id", "LPSE@Contoh.go.id")


@pytest.mark.parametrize(
    "address",
    [
        "siti@cv-maju.co.id",
        "Budi.Santoso@gmail.com",
        "pokja.3@kab-contoh.go.id",
        "user+tender@example.com",
        "reply@example.com",
        "bouncer@example.com",
        "postmaster.lpse@example.com",
        "helpdesk@lpse.lain.go.id",
        "helpdesk@lkpp.go.id",
        "andi@bücher.example",
    ],
)
def test_ordinary_addresses_are_allowed(address: str) -> None:
    assert refusal_reason(address, own_addresses=OWN) is None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("helpdesk@lpse.contoh.go.id", "own address"),
        ("HelpDesk@LPSE.Contoh.go.id", "own address"),
        ("helpdesk+tiket@lpse.contoh.go.id", "own address"),
        ("lpse@contoh.go.id", "own address"),
        ("noreply@lkpp.go.id", "no-reply address"),
        ("no-reply@accounts.google.com", "no-reply address"),
        ("No_Reply@example.com", "no-reply address"),
        ("do-not-reply@spse.example.go.id", "no-reply address"),
        ("donotreply@example.com", "no-reply address"),
        ("notifikasi.noreply@bank.co.id", "no-reply address"),
        ("jangan-dibalas@example.go.id", "no-reply address"),
        ("MAILER-DAEMON@mx.example.com", "mailer-daemon address"),
        ("mailer_daemon@mx.example.com", "mailer-daemon address"),
        ("postmaster@example.com", "postmaster address"),
        ("bounce@example.com", "bounce address"),
        ("bounces+siti=cv-maju.co.id@lists.example.com", "bounce address"),
        ("msprvs1=abc=bounces-1234@bounce.example.com", "bounce address"),
        ("bounce-12345-67@mail.example.com", "bounce address"),
    ],
)
def test_refused_addresses(address: str, reason: str) -> None:
    assert refusal_reason(address, own_addresses=OWN) == reason


@pytest.mark.parametrize(
    "address",
    [
        "",
        "   ",
        "siti",
        "@example.com",
        "siti@",
        "siti@@example.com",
        "Siti <siti@example.com>",
        "siti @example.com",
        "siti@exa mple.com",
        "siti@-example.com",
        "siti@example..com",
        "siti..n@example.com",
        ".siti@example.com",
        '"siti"@example.com',
        "siti@[127.0.0.1]",
        "siti@example.com\r\nRCPT TO:<x@y>",
        "x" * 65 + "@example.com",
    ],
)
def test_invalid_addresses(address: str) -> None:
    assert refusal_reason(address, own_addresses=OWN) == "invalid address"


def test_canonical_address() -> None:
    assert canonical_address(" Siti@CV-Maju.Co.Id ") == "siti@cv-maju.co.id"
    assert canonical_address("andi@Bücher.example") == "andi@xn--bcher-kva.example"
    assert canonical_address("not an address") is None


def test_invalid_own_addresses_are_ignored() -> None:
    assert refusal_reason("siti@cv-maju.co.id", own_addresses=["", "nonsense"]) is None


NOW = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)


def test_hourly_cap_counts_only_the_last_hour() -> None:
    recent = [NOW - timedelta(minutes=m) for m in (1, 20, 59)]
    old = [NOW - timedelta(minutes=m) for m in (60, 61, 300)]
    assert over_hourly_cap(recent + old, NOW, cap=4) is False
    assert over_hourly_cap(recent + old, NOW, cap=3) is True
    assert over_hourly_cap(old, NOW, cap=1) is False
    assert over_hourly_cap([], NOW, cap=1) is False


def test_hourly_cap_counts_future_times_and_zero_cap_blocks() -> None:
    assert over_hourly_cap([NOW + timedelta(seconds=5)], NOW, cap=1) is True
    assert over_hourly_cap([], NOW, cap=0) is True
