"""The settings `lpse-helpdesk rekap` reads, loaded without pydantic.

`rekap` runs from cron and by hand and must start quickly. Building and validating all the
settings of the service (config/settings.py: pydantic and pydantic-settings) is a quarter of
its start-up, for settings a recap never uses. This module reads the same sources the same
way (the environment wins over the env file; names are case-sensitive; the env file is read
by python-dotenv, as pydantic-settings does) but only the settings a recap uses, each
checked as `Settings` checks it and reported the same way: one line naming the setting.
Their defaults and checks are the ones of `Settings` (tests/test_config_recap.py keeps the
two in step).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from lpse_helpdesk.domain.model import DomainConfig

DEFAULT_DATABASE_URL = "sqlite:///lpse-helpdesk.sqlite3"

# pydantic's reading of a boolean from text (lax mode): case-insensitive, nothing stripped.
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_NOT_BOOLEAN = "Input should be a valid boolean, unable to interpret input"


def check_timezone(value: str) -> str:
    """HELPDESK_TIMEZONE's check (also `Settings`'): a zone the zoneinfo database knows."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"'{value}' is not a time zone (use Asia/Jakarta, Asia/Makassar or Asia/Jayapura)"
        ) from None
    return value


@dataclass(frozen=True, slots=True)
class RecapSettings:
    """What a recap needs of the settings; names and defaults as in `Settings`."""

    DATABASE_URL: str = DEFAULT_DATABASE_URL
    HELPDESK_TIMEZONE: str = "Asia/Jakarta"
    HELPDESK_SOP_FILE: Path | None = None
    LPSE_NAME: str = "LPSE"
    REKAP_CITY: str = ""
    REKAP_HEAD_TITLE: str = "Kepala LPSE"
    REKAP_HEAD_NAME: str = ""
    REKAP_MASK_EMAIL: bool = False

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.HELPDESK_TIMEZONE)


@dataclass(frozen=True)
class RecapConfig:
    """The recap's settings and SOP data, or the problems found (one line each)."""

    settings: RecapSettings | None
    domain: DomainConfig | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def read_sources(env_file: Path | str | None) -> dict[str, str]:
    """The env file's values overridden by the environment's (what pydantic-settings sees:
    a name without a value in the env file is not set)."""
    values: dict[str, str] = {}
    if env_file is not None and (Path(env_file).is_file() or Path(env_file).is_fifo()):
        from dotenv import dotenv_values

        read = dotenv_values(env_file, encoding="utf-8")
        values.update((name, value) for name, value in read.items() if value is not None)
    values.update(os.environ)
    return values


def _parse(name: str, raw: str) -> object:
    """One setting from its text, as `Settings` reads it; ValueError says what is wrong."""
    if name == "HELPDESK_SOP_FILE":
        return Path(raw) if raw else None
    if name == "REKAP_MASK_EMAIL":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError(_NOT_BOOLEAN)
    if name == "HELPDESK_TIMEZONE":
        return check_timezone(raw)
    return raw


def recap_settings(sources: Mapping[str, str]) -> RecapSettings | tuple[str, ...]:
    """The recap's settings from `sources`, or one line per wrong setting."""
    given: dict[str, object] = {}
    problems: list[str] = []
    for field in fields(RecapSettings):
        if field.name not in sources:
            continue
        try:
            given[field.name] = _parse(field.name, sources[field.name])
        except ValueError as error:
            problems.append(f"{field.name}: {error}")
    if problems:
        return tuple(problems)
    return RecapSettings(**given)  # type: ignore[arg-type]


def load_recap_config(env_file: Path | str | None = ".env") -> RecapConfig:
    """Load the recap's settings and the SOP data; collect the problems instead of raising."""
    from lpse_helpdesk.domain.loader import DomainConfigError, load_domain

    loaded = recap_settings(read_sources(env_file))
    if isinstance(loaded, tuple):
        return RecapConfig(None, None, loaded)
    try:
        domain = load_domain(loaded.HELPDESK_SOP_FILE)
    except DomainConfigError as error:
        return RecapConfig(loaded, None, (f"HELPDESK_SOP_FILE: {error}",))
    return RecapConfig(loaded, domain, ())
