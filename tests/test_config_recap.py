"""config/recap.py reads the recap's settings without pydantic: it must read them exactly as
config/settings.py does (same defaults, same values from the env file and the environment,
the same one-line problems), which these tests hold it to."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lpse_helpdesk.config.check import check_config
from lpse_helpdesk.config.recap import RecapSettings, load_recap_config
from lpse_helpdesk.config.settings import Settings
from tests.reports_support import REQUIRED_SETTINGS

REQUIRED = REQUIRED_SETTINGS
NAMES = [field.name for field in dataclasses.fields(RecapSettings)]


@pytest.fixture(autouse=True)
def _no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*NAMES, *REQUIRED]:
        monkeypatch.delenv(name, raising=False)


def test_the_defaults_are_those_of_settings() -> None:
    for name in NAMES:
        assert getattr(RecapSettings(), name) == Settings.model_fields[name].default, name


def _both(env_file: Path) -> tuple[object, object]:
    """What each loader makes of the same sources: the recap's settings, or the problems
    with the recap's settings."""
    full = check_config(env_file)
    recap = load_recap_config(env_file)
    if full.settings is not None and full.ok:
        assert recap.ok, recap.problems
        assert recap.settings is not None and recap.domain is not None
        assert recap.domain == full.domain
        return (
            {name: getattr(full.settings, name) for name in NAMES},
            dataclasses.asdict(recap.settings),
        )
    ours = [line for line in full.problems if line.split(":", 1)[0] in NAMES]
    assert ours, full.problems  # only the recap's settings are varied here
    return ours, list(recap.problems)


VALUES = [
    {},  # every default
    {"LPSE_NAME": "LPSE Kota Contoh", "REKAP_CITY": "Contoh", "REKAP_HEAD_NAME": "Dr. A, M.T."},
    {"DATABASE_URL": "postgresql://helpdesk:rahasia@db.lpse.test/helpdesk"},
    {"HELPDESK_TIMEZONE": "Asia/Makassar", "REKAP_HEAD_TITLE": "Kepala Bagian PBJ"},
    {"HELPDESK_TIMEZONE": "Asia/Bandung"},
    {"HELPDESK_TIMEZONE": ""},
    {"HELPDESK_SOP_FILE": ""},
    {"HELPDESK_SOP_FILE": "/tidak/ada/sop.yaml"},
    *({"REKAP_MASK_EMAIL": v} for v in ["true", "TRUE", "Yes", "on", "t", "1", "0", "off", "N"]),
    *({"REKAP_MASK_EMAIL": v} for v in ["", "2", "kadang", "enable"]),
    {"REKAP_MASK_EMAIL": "ya", "HELPDESK_TIMEZONE": "WIB"},  # two problems, in order
]


@pytest.mark.parametrize("values", VALUES)
def test_the_env_file_is_read_as_settings_reads_it(tmp_path: Path, values: dict[str, str]) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "".join(f"{k}={v}\n" for k, v in {**REQUIRED, **values}.items()), encoding="utf-8"
    )
    full, recap = _both(env_file)
    assert recap == full


def test_quotes_comments_and_the_environment_winning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "".join(f"{k}={v}\n" for k, v in REQUIRED.items())
        + '# a comment\nLPSE_NAME="LPSE \\"Kota\\" Contoh"  # trailing comment\n'
        + "export REKAP_CITY='Kota Contoh'\n"
        + "REKAP_HEAD_NAME=\n"
        + "REKAP_HEAD_TITLE\n"  # a name without a value: not set
        + "HELPDESK_SOP_FILE\n"
        + "REKAP_MASK_EMAIL=false\n"
        + "HELPDESK_TIMEZONE=Asia/Bandung\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("REKAP_MASK_EMAIL", "true")
    monkeypatch.setenv("HELPDESK_TIMEZONE", "Asia/Jayapura")  # a wrong file value, overridden
    full, recap = _both(env_file)
    assert recap == full
    assert isinstance(recap, dict)
    assert recap["LPSE_NAME"] == 'LPSE "Kota" Contoh' and recap["REKAP_CITY"] == "Kota Contoh"
    assert recap["REKAP_MASK_EMAIL"] is True and recap["HELPDESK_TIMEZONE"] == "Asia/Jayapura"
    assert recap["REKAP_HEAD_NAME"] == "" and recap["REKAP_HEAD_TITLE"] == "Kepala LPSE"


def test_without_an_env_file_the_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REKAP_HEAD_TITLE", "Kepala UKPBJ")
    loaded = load_recap_config(None)
    assert loaded.ok and loaded.settings is not None
    assert loaded.settings.REKAP_HEAD_TITLE == "Kepala UKPBJ"
    assert loaded.settings.timezone.key == "Asia/Jakarta"


def test_a_wrong_sop_file_is_one_line(tmp_path: Path) -> None:
    sop = tmp_path / "sop.yaml"
    sop.write_text("priorities: [1, 2\n", encoding="utf-8")
    env_file = tmp_path / ".env"
    env_file.write_text(
        "".join(f"{k}={v}\n" for k, v in REQUIRED.items()) + f"HELPDESK_SOP_FILE={sop}\n",
        encoding="utf-8",
    )
    loaded = load_recap_config(env_file)
    assert len(loaded.problems) == 1
    assert loaded.problems[0].startswith("HELPDESK_SOP_FILE: ")
    assert loaded.problems == check_config(env_file).problems
