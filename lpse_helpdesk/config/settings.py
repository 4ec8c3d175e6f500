"""Settings from the environment and `.env` (pydantic-settings); names are the env names."""

from __future__ import annotations

import datetime as dt
import enum
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lpse_helpdesk.config.recap import DEFAULT_DATABASE_URL, check_timezone
from lpse_helpdesk.workflow.signatures import OfficialName, parse_staff_names


class Security(enum.StrEnum):
    SSL = "ssl"
    STARTTLS = "starttls"
    PLAIN = "plain"


class TopicsMode(enum.StrEnum):
    """Whether each ticket gets its own forum topic in the helpdesk group."""

    AUTO = "auto"  # when the group has topics enabled
    ON = "on"  # always (the group must have topics)
    OFF = "off"  # never: every card in the group itself


class MailAuth(enum.StrEnum):
    """How the service logs in to the IMAP or SMTP server."""

    PASSWORD = "password"  # noqa: S105 (a mode, not a password)
    XOAUTH2 = "xoauth2"


def _id_list(value: object) -> object:
    """Accept "1, 2,3" (as written in .env) as well as a list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, int):
        return [value]
    return value


class Settings(BaseSettings):
    """Every setting of the service; see `.env.example` for one line on each."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=True,
        extra="ignore",
        validate_default=True,
    )

    # Telegram
    TELEGRAM_BOT_TOKEN: SecretStr
    TELEGRAM_API_URL: str = "https://api.telegram.org"
    HELPDESK_CHAT_ID: int
    SUPERVISOR_IDS: Annotated[list[int], NoDecode] = Field(default_factory=list)
    STAFF_IDS: Annotated[list[int], NoDecode] = Field(default_factory=list)
    TELEGRAM_TOPICS: TopicsMode = TopicsMode.AUTO
    TELEGRAM_WEBHOOK_URL: str | None = None
    TELEGRAM_WEBHOOK_LISTEN: str = "127.0.0.1:8443"
    TELEGRAM_WEBHOOK_SECRET: SecretStr | None = None

    # Mail in (IMAP)
    IMAP_HOST: str
    IMAP_PORT: int = Field(default=993, ge=1, le=65535)
    IMAP_USER: str
    IMAP_PASSWORD: SecretStr | None = None
    IMAP_AUTH: MailAuth = MailAuth.PASSWORD
    IMAP_SECURITY: Security = Security.SSL
    IMAP_FOLDER: str = "INBOX"
    IMAP_PROCESSED_FOLDER: str | None = None
    IMAP_QUARANTINE_FOLDER: str | None = None
    IMAP_POLL_SECONDS: int = Field(default=60, ge=5, le=3600)
    IMAP_IDLE_SECONDS: int = Field(default=1740, ge=10, le=1740)
    IMAP_TIMEOUT: float = Field(default=30.0, gt=0, le=600)
    MAIL_MAX_BYTES: int = Field(default=25 * 1024 * 1024, ge=64 * 1024)
    IMAP_BACKFILL_DAYS: float = Field(default=7.0, ge=0, le=3650)
    MAIL_PARSE_SECONDS: float = Field(default=20.0, gt=0, le=600)
    REOPEN_DAYS: int = Field(default=7, ge=0, le=365)
    NEW_TICKETS_PER_SENDER_PER_HOUR: int = Field(default=10, ge=1, le=1000)

    # Mail out (SMTP)
    SMTP_HOST: str
    SMTP_PORT: int = Field(default=465, ge=1, le=65535)
    SMTP_USER: str | None = None
    SMTP_PASSWORD: SecretStr | None = None
    SMTP_AUTH: MailAuth = MailAuth.PASSWORD
    SMTP_SECURITY: Security = Security.SSL
    SMTP_TIMEOUT: float = Field(default=30.0, gt=0, le=600)
    SMTP_RETRY_HOURS: float = Field(default=24.0, gt=0, le=24 * 14)
    SEND_ACKNOWLEDGEMENT: bool = True
    AUTO_MAIL_PER_HOUR: int = Field(default=5, ge=0, le=1000)
    TEMPLATE_DIR: Path | None = None

    # OAuth2 (XOAUTH2), for IMAP_AUTH / SMTP_AUTH = xoauth2 (Google Workspace, Microsoft 365)
    OAUTH2_TOKEN_URL: str | None = None
    OAUTH2_CLIENT_ID: str | None = None
    OAUTH2_CLIENT_SECRET: SecretStr | None = None
    OAUTH2_REFRESH_TOKEN: SecretStr | None = None
    OAUTH2_SCOPE: str | None = None

    # The helpdesk
    HELPDESK_EMAIL: str
    HELPDESK_NAME: str = "Helpdesk LPSE"
    LPSE_NAME: str = "LPSE"
    HELPDESK_PHONE: str | None = None
    HELPDESK_HOURS: str | None = None
    STAFF_NAMES: str = ""
    SPSE_APPLICATION: str = "SPSE"
    REPLY_ATTACHMENT_MAX_MB: int = Field(default=5, ge=1, le=20)
    REKAP_CITY: str = ""
    REKAP_HEAD_TITLE: str = "Kepala LPSE"
    REKAP_HEAD_NAME: str = ""
    LKPP_HELPDESK_EMAIL: str
    DATABASE_URL: str = DEFAULT_DATABASE_URL
    HELPDESK_TIMEZONE: str = "Asia/Jakarta"
    HELPDESK_SOP_FILE: Path | None = None
    SLA_REMIND_RATIO: float = Field(default=0.8, gt=0, lt=1)
    SLA_SUMMARY_TIME: dt.time = dt.time(7, 45)
    SLA_SCAN_SECONDS: int = Field(default=300, ge=1, le=3600)
    REKAP_MONTHLY: bool = True
    REKAP_MASK_EMAIL: bool = False
    TICKET_PREFIX: str = Field(default="LPSE", pattern=r"^[A-Z][A-Z0-9]{1,11}$")
    LOG_LEVEL: str = "INFO"
    METRICS_ADDRESS: str | None = None
    RETENTION_DAYS: int = Field(default=730, ge=30, le=36500)

    _split_ids = field_validator("SUPERVISOR_IDS", "STAFF_IDS", mode="before")(_id_list)

    @field_validator("TELEGRAM_API_URL")
    @classmethod
    def _check_api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("HELPDESK_EMAIL", "LKPP_HELPDESK_EMAIL")
    @classmethod
    def _check_address(cls, value: str) -> str:
        value = value.strip()
        local, _, domain = value.rpartition("@")
        if not local or "." not in domain or " " in value:
            raise ValueError(f"'{value}' is not an e-mail address")
        return value

    @field_validator("HELPDESK_TIMEZONE")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator(
        "HELPDESK_SOP_FILE",
        "TEMPLATE_DIR",
        "IMAP_PROCESSED_FOLDER",
        "IMAP_QUARANTINE_FOLDER",
        "HELPDESK_PHONE",
        "HELPDESK_HOURS",
        "IMAP_PASSWORD",
        "OAUTH2_TOKEN_URL",
        "OAUTH2_CLIENT_ID",
        "OAUTH2_CLIENT_SECRET",
        "OAUTH2_REFRESH_TOKEN",
        "OAUTH2_SCOPE",
        "TELEGRAM_WEBHOOK_URL",
        "TELEGRAM_WEBHOOK_SECRET",
        "METRICS_ADDRESS",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("OAUTH2_TOKEN_URL")
    @classmethod
    def _check_token_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        local = parts.hostname in ("localhost", "127.0.0.1", "::1")
        secure = parts.scheme == "https" or (parts.scheme == "http" and local)
        if not parts.hostname or not secure:
            raise ValueError("must be an https:// URL, e.g. https://oauth2.googleapis.com/token")
        if "{" in value:
            raise ValueError("replace {tenant} with the Microsoft 365 tenant ID or domain")
        return value.strip()

    @field_validator("TELEGRAM_WEBHOOK_URL")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("must be an https:// URL (Telegram sends updates only over HTTPS)")
        return value

    @field_validator("TELEGRAM_WEBHOOK_LISTEN", "METRICS_ADDRESS")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"'{value}' must be HOST:PORT, e.g. 127.0.0.1:9464")
        return value

    @model_validator(mode="after")
    def _check_mail_auth(self) -> Settings:
        """One "NAME: problem" line per problem (check-config shows them one by one)."""
        problems = []
        if self.IMAP_AUTH is MailAuth.PASSWORD and self.IMAP_PASSWORD is None:
            problems.append("IMAP_PASSWORD: is required when IMAP_AUTH=password")
        if self.SMTP_AUTH is MailAuth.XOAUTH2 and not self.SMTP_USER:
            problems.append("SMTP_USER: is required when SMTP_AUTH=xoauth2 (the mailbox address)")
        users = [
            name
            for name, auth in (("IMAP_AUTH", self.IMAP_AUTH), ("SMTP_AUTH", self.SMTP_AUTH))
            if auth is MailAuth.XOAUTH2
        ]
        if users:
            for name in ("OAUTH2_TOKEN_URL", "OAUTH2_CLIENT_ID", "OAUTH2_REFRESH_TOKEN"):
                if getattr(self, name) is None:
                    problems.append(f"{name}: is required when {users[0]}=xoauth2")
        if self.TELEGRAM_WEBHOOK_URL and self.TELEGRAM_WEBHOOK_SECRET is None:
            problems.append(
                "TELEGRAM_WEBHOOK_SECRET: is required with TELEGRAM_WEBHOOK_URL"
                " (1-256 characters A-Z, a-z, 0-9, _ and -)"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @field_validator("STAFF_NAMES")
    @classmethod
    def _check_staff_names(cls, value: str) -> str:
        parse_staff_names(value)  # raises ValueError naming the bad entry
        return value

    @property
    def staff_names(self) -> dict[int, OfficialName]:
        return parse_staff_names(self.STAFF_NAMES)

    @field_validator("SMTP_USER", mode="before")
    @classmethod
    def _empty_user_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("LOG_LEVEL")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.HELPDESK_TIMEZONE)

    def telegram_base_url(self) -> str:
        """Base URL for PTB: requests go to {TELEGRAM_API_URL}/bot{token}/{method}."""
        return f"{self.TELEGRAM_API_URL}/bot"

    def telegram_file_url(self) -> str:
        return f"{self.TELEGRAM_API_URL}/file/bot"
