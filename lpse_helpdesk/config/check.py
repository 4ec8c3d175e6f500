"""Validate the settings and the domain file; report each problem as one line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr, ValidationError

from lpse_helpdesk.config.settings import MailAuth, Settings
from lpse_helpdesk.domain.loader import DomainConfigError, load_domain
from lpse_helpdesk.domain.model import DomainConfig

_MISSING = "is required but not set"


@dataclass(frozen=True)
class ConfigReport:
    settings: Settings | None
    domain: DomainConfig | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _describe(error: dict[str, object]) -> str:
    location = error.get("loc") or ("(settings)",)
    name = str(location[0]) if isinstance(location, tuple) else str(location)
    kind = str(error.get("type", ""))
    given = error.get("input")
    if kind == "missing":
        return f"{name}: {_MISSING}"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if (isinstance(location, tuple) and len(location) > 1) or kind == "list_type":
        message = f"must be Telegram user ids (numbers) separated by commas; '{given}' is not"
    elif kind.startswith(("int_", "greater_than", "less_than")):
        if name.endswith("_PORT"):
            message = f"'{given}' is not a port number (1-65535)"
        elif kind.startswith("int_"):
            message = f"'{given}' is not a number"
    elif kind == "enum":
        choices = "password, xoauth2" if name.endswith("_AUTH") else "ssl, starttls, plain"
        message = f"'{given}' is not one of: {choices}"
    elif kind == "string_pattern_mismatch":
        message = f"'{given}' must be 2-12 capital letters or digits, starting with a letter"
    return f"{name}: {message}"


def check_config(env_file: Path | str | None = ".env") -> ConfigReport:
    """Load settings and the domain data; collect every problem instead of raising."""
    try:
        settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as error:
        seen: set[str] = set()
        lines = []
        described: list[str] = []
        for item in error.errors():
            if item.get("loc"):
                described.append(_describe(dict(item)))
            else:  # a check across settings (Settings._check_mail_auth): "NAME: problem" lines
                described.extend(str(item["msg"]).removeprefix("Value error, ").splitlines())
        for line in described:
            name = line.split(":", 1)[0]
            if name not in seen:
                seen.add(name)
                lines.append(line)
        return ConfigReport(None, None, tuple(lines))
    problems: list[str] = []
    domain = None
    try:
        domain = load_domain(settings.HELPDESK_SOP_FILE)
    except DomainConfigError as error:
        problems.append(f"HELPDESK_SOP_FILE: {error}")
    if settings.TEMPLATE_DIR is not None and not settings.TEMPLATE_DIR.is_dir():
        problems.append(f"TEMPLATE_DIR: {settings.TEMPLATE_DIR} is not a folder")
    if settings.HELPDESK_EMAIL.lower() == settings.LKPP_HELPDESK_EMAIL.lower():
        problems.append("LKPP_HELPDESK_EMAIL: must differ from HELPDESK_EMAIL")
    problems.extend(placeholders(settings))
    return ConfigReport(settings, domain, tuple(problems))


EXAMPLE_TOKEN = "123456789:AAExampleTokenFromBotFather"  # noqa: S105 (the .env.example one)
EXAMPLE_SECRET = "change-me"  # noqa: S105
_SECRETS = (
    "IMAP_PASSWORD",
    "SMTP_PASSWORD",
    "OAUTH2_CLIENT_SECRET",
    "OAUTH2_REFRESH_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
)
_NAMES = (
    "IMAP_HOST",
    "IMAP_USER",
    "SMTP_HOST",
    "SMTP_USER",
    "HELPDESK_EMAIL",
    "LKPP_HELPDESK_EMAIL",
    "TELEGRAM_WEBHOOK_URL",
    "OAUTH2_TOKEN_URL",
)


def _example_domain(value: str) -> bool:
    """`mail.lpse.example.go.id`, `a@example.com`, `https://example.org/x`: reserved examples."""
    host = value.rsplit("@", 1)[-1].split("//", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return "example" in host.lower().split(".")


def placeholders(settings: Settings) -> list[str]:
    """Settings still holding the placeholder values of `.env.example`, one line each."""
    problems = []
    token = settings.TELEGRAM_BOT_TOKEN.get_secret_value()
    if token == EXAMPLE_TOKEN or "ExampleToken" in token:
        problems.append(
            "TELEGRAM_BOT_TOKEN: still the example from .env.example; put the bot's token"
            " from @BotFather"
        )
    for name in _SECRETS:
        secret = getattr(settings, name)
        if isinstance(secret, SecretStr) and secret.get_secret_value().lower() == EXAMPLE_SECRET:
            problems.append(f"{name}: still '{EXAMPLE_SECRET}' from .env.example; put the real one")
    for name in _NAMES:
        value = getattr(settings, name)
        if isinstance(value, str) and _example_domain(value):
            problems.append(
                f"{name}: '{value}' is the example from .env.example; put your own server or"
                " address"
            )
    return problems


def mask(secret: SecretStr | None) -> str:
    if secret is None or not secret.get_secret_value():
        return "(tidak diisi)"
    value = secret.get_secret_value()
    return "****" + value[-4:] if len(value) > 12 else "****"


def summary(settings: Settings, domain: DomainConfig) -> list[str]:
    """A short summary for `check-config`, secrets masked."""
    staff = ", ".join(map(str, settings.STAFF_IDS)) or "(semua anggota grup)"
    return [
        f"Telegram   : {settings.TELEGRAM_API_URL} token {mask(settings.TELEGRAM_BOT_TOKEN)}",
        group_line(settings),
        f"Supervisor : {', '.join(map(str, settings.SUPERVISOR_IDS)) or '(belum ada)'}",
        f"Staf       : {staff}",
        f"IMAP       : {settings.IMAP_HOST}:{settings.IMAP_PORT} "
        f"({settings.IMAP_SECURITY.value}, folder {settings.IMAP_FOLDER}) "
        f"user {settings.IMAP_USER} "
        + (
            f"password {mask(settings.IMAP_PASSWORD)}"
            if settings.IMAP_AUTH is MailAuth.PASSWORD
            else "OAuth2 (XOAUTH2)"
        ),
        f"SMTP       : {settings.SMTP_HOST}:{settings.SMTP_PORT} ({settings.SMTP_SECURITY.value})"
        + (f" user {settings.SMTP_USER}" if settings.SMTP_USER else "")
        + (
            f" password {mask(settings.SMTP_PASSWORD)}"
            if settings.SMTP_AUTH is MailAuth.PASSWORD
            else " OAuth2 (XOAUTH2)"
        ),
        *(
            [
                f"OAuth2     : {settings.OAUTH2_TOKEN_URL} client {settings.OAUTH2_CLIENT_ID} "
                f"refresh token {mask(settings.OAUTH2_REFRESH_TOKEN)}"
            ]
            if MailAuth.XOAUTH2 in (settings.IMAP_AUTH, settings.SMTP_AUTH)
            else []
        ),
        f"Helpdesk   : {settings.HELPDESK_NAME} <{settings.HELPDESK_EMAIL}>",
        f"LKPP       : {settings.LKPP_HELPDESK_EMAIL}",
        f"Database   : {redact_url(settings.DATABASE_URL)}",
        f"Zona waktu : {settings.HELPDESK_TIMEZONE}",
        f"Data SOP   : {domain.source} ({len(domain.priorities)} prioritas, "
        f"{len(domain.categories)} kategori)",
    ]


def stored_chat_id(settings: Settings) -> tuple[int, str | None] | None:
    """(chat id, since when) the database knows the group by, when Telegram migrated the
    group HELPDESK_CHAT_ID names; None when it has not, or the database cannot be read."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

    from lpse_helpdesk.bot.group import follow_migrations
    from lpse_helpdesk.storage.db import normalise_url

    try:
        url = make_url(normalise_url(settings.DATABASE_URL))
    except Exception:  # a malformed URL is reported elsewhere, never raised here
        return None
    args: dict[str, object] = {}
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or not Path(url.database).exists():
            return None  # never create a database file just to look
    elif url.get_backend_name() == "postgresql":
        args["connect_timeout"] = 3
    engine = create_engine(url, connect_args=args)
    try:
        with Session(engine) as session:
            current, _, at = follow_migrations(session, settings.HELPDESK_CHAT_ID)
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    return (current, at) if current != settings.HELPDESK_CHAT_ID else None


def group_line(settings: Settings) -> str:
    configured = settings.HELPDESK_CHAT_ID
    stored = stored_chat_id(settings)
    if stored is None:
        return f"Grup       : {configured}"
    current, at = stored
    since = f" pada {at[:16].replace('T', ' ')} UTC" if at else ""
    return (
        f"Grup       : {current} (dari basis data: Telegram mengubah grup {configured} menjadi "
        f"supergroup{since}; id ini menggantikan HELPDESK_CHAT_ID. "
        f"Perbarui .env: HELPDESK_CHAT_ID={current})"
    )


def redact_url(url: str) -> str:
    """Hide the password in a database URL."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a malformed URL is shown masked, never raised
        return "(URL tidak valid)"
