from __future__ import annotations

import dataclasses

import pytest

from lpse_helpdesk.bridge.suggest import Suggestion, keyword_pattern, suggest
from lpse_helpdesk.domain.loader import load_domain
from lpse_helpdesk.domain.model import Category, DomainConfig


@pytest.fixture(scope="module")
def domain() -> DomainConfig:
    return load_domain()


def test_brief_example(domain: DomainConfig) -> None:
    result = suggest("", "gagal upload penawaran, batas waktu jam 14.00", domain)
    assert result.category == "TENDER_UNGGAH_PENAWARAN"
    assert result.priority == "tinggi"
    assert "gagal upload" in result.matched
    assert "batas waktu" in result.matched


def test_no_match_gives_fallback(domain: DomainConfig) -> None:
    result = suggest("Halo", "Selamat pagi, apa kabar?", domain)
    assert result == Suggestion(category="LAINNYA", priority="rendah", matched=())


def test_empty_input(domain: DomainConfig) -> None:
    assert suggest("", "", domain).category == domain.fallback_category


def test_urgency_raises_priority(domain: DomainConfig) -> None:
    calm = suggest("Lupa password", "Saya lupa password akun penyedia.", domain)
    urgent = suggest("Lupa password", "Saya lupa password, mohon segera.", domain)
    assert (calm.category, calm.priority) == ("AKUN_LUPA_PASSWORD", "rendah")
    assert (urgent.category, urgent.priority) == ("AKUN_LUPA_PASSWORD", "tinggi")
    assert urgent.matched[-1] == "segera"


def test_subject_counts_double(domain: DomainConfig) -> None:
    # "apendo" in the subject (2) beats "sertifikat elektronik" in the text (1).
    result = suggest("Apendo", "Sertifikat elektronik saya juga bermasalah.", domain)
    assert result.category == "APENDO_SPAMKODOK"
    reverse = suggest("Sertifikat elektronik", "Apendo juga bermasalah.", domain)
    assert reverse.category == "SERTIFIKAT_ELEKTRONIK"


def test_tie_goes_to_the_first_category(domain: DomainConfig) -> None:
    # One keyword each for AKUN_REGISTRASI_VERIFIKASI and SIRUP; registration is listed first.
    result = suggest("", "registrasi dan sirup", domain)
    assert result.category == "AKUN_REGISTRASI_VERIFIKASI"


def test_word_boundaries(domain: DomainConfig) -> None:
    # "rup" must not match inside "terputus", "adp" not inside "padpad", "tte" not in "attempt".
    result = suggest("", "koneksi terputus, padpad, attempt", domain)
    assert result.category == "LAINNYA"


def test_case_insensitive(domain: DomainConfig) -> None:
    assert suggest("SANGGAH", "", domain).category == "SANGGAH"


def test_jam_keyword_needs_a_following_space(domain: DomainConfig) -> None:
    assert suggest("", "sanggah jam 10", domain).priority == "tinggi"
    assert keyword_pattern("jam ") is not None
    assert not keyword_pattern("jam ").search("jambore")  # type: ignore[union-attr]
    assert not keyword_pattern("jam ").search("ditunggu 2 jam")  # type: ignore[union-attr]


def test_keyword_pattern_shapes() -> None:
    pattern = keyword_pattern("lupa  password")
    assert pattern is not None and pattern.search("LUPA\npassword")
    assert keyword_pattern("   ") is None
    hyphen = keyword_pattern("e-katalog")
    assert hyphen is not None and hyphen.search("di e-katalog.")
    number = keyword_pattern("502")
    assert number is not None and not number.search("15020")


def test_highest_priority_is_kept(domain: DomainConfig) -> None:
    result = suggest("Sanggah", "batas waktu sanggah hari ini", domain)
    assert (result.category, result.priority) == ("SANGGAH", "tinggi")


def test_custom_domain() -> None:
    base = load_domain()
    custom = dataclasses.replace(
        base,
        categories=(
            Category("A", "A", "rendah", ("server",)),
            Category("B", "B", "menengah", ("server", "login")),
        ),
        urgency_keywords=(),
        fallback_category="B",
    )
    assert suggest("", "server", custom).category == "A"
    assert suggest("", "server login", custom) == Suggestion("B", "menengah", ("server", "login"))
    assert suggest("", "halo", custom) == Suggestion("B", "menengah", ())
