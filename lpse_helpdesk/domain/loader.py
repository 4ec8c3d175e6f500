"""Load the domain data from the packaged defaults or from HELPDESK_SOP_FILE."""

from __future__ import annotations

import datetime as dt
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lpse_helpdesk.domain.model import (
    SHORT_LABEL_CHARS,
    BusinessDuration,
    CannedAnswer,
    Category,
    DomainConfig,
    OpeningHours,
    Priority,
    SopStep,
    WorkingHours,
)

_DURATION = re.compile(
    r"^\s*(?P<n>\d+)\s*(?P<unit>m|min|mins|minute|minutes|menit|h|hour|hours|jam"
    r"|working\s+hours?|jam\s+kerja|working\s+days?|hari\s+kerja|d|day|days|hari)\s*$",
    re.IGNORECASE,
)
_CONFIG_STEPS = (
    SopStep.SET_PRIORITY,
    SopStep.REQUEST_DATA,
    SopStep.ANALYSE,
    SopStep.REPLY_AFTER_SOLVED,
    SopStep.ESCALATE_AND_NOTIFY,
)
#: libyaml's parser when PyYAML has it (a few times faster at each start-up), same results.
_SAFE_LOADER = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
_WEEKDAY_KEYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class DomainConfigError(ValueError):
    """A domain file is unusable; the message names the key and what is wrong."""


def parse_duration(text: object, key: str) -> BusinessDuration:
    """Parse "5m", "4 working hours", "1 working day" into a business duration."""
    match = _DURATION.match(str(text))
    if not match:
        raise DomainConfigError(
            f"{key}: '{text}' is not a duration (use e.g. '5m', '4 working hours', '1 working day')"
        )
    n = int(match["n"])
    unit = match["unit"].lower()
    if unit.startswith("m"):
        return BusinessDuration(minutes=n)
    if unit.startswith(("d", "hari", "working day")):
        return BusinessDuration(working_days=n)
    return BusinessDuration(minutes=n * 60)  # hours, jam


def _parse_time(value: object, key: str) -> dt.time:
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError:
        raise DomainConfigError(f"{key}: '{value}' is not a time of day (HH:MM)") from None


def _opening(value: object, key: str) -> OpeningHours | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise DomainConfigError(f"{key}: give [opening, closing], e.g. ['07:30', '16:00'], or null")
    opens, closes = _parse_time(value[0], key), _parse_time(value[1], key)
    if closes <= opens:
        raise DomainConfigError(f"{key}: closing time {closes:%H:%M} is not after {opens:%H:%M}")
    return OpeningHours(opens, closes)


def _mapping(value: object, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DomainConfigError(f"{key}: expected a mapping")
    return value


def _require(data: dict[str, Any], name: str, key: str) -> Any:
    if name not in data:
        raise DomainConfigError(f"{key}.{name}: missing" if key else f"{name}: missing")
    return data[name]


def _working_hours(data: dict[str, Any]) -> WorkingHours:
    key = "working_hours"
    weekly: list[OpeningHours | None] = [None] * 7
    mon_thu = _opening(data.get("monday_thursday"), f"{key}.monday_thursday")
    for day in range(4):
        weekly[day] = mon_thu
    weekly[4] = _opening(data.get("friday"), f"{key}.friday")
    for index, name in enumerate(_WEEKDAY_KEYS):
        if name in data:
            weekly[index] = _opening(data[name], f"{key}.{name}")
    if not any(weekly):
        raise DomainConfigError(f"{key}: the helpdesk is closed every day of the week")
    holidays = _mapping(data.get("holidays") or {}, f"{key}.holidays")
    country = holidays.get("country")
    categories = holidays.get("categories") or ["public"]
    if country is not None:
        from lpse_helpdesk.timekeeping.calendar import (  # local: imports `holidays`
            UnknownHolidayCountry,
            check_holiday_calendar,
        )

        try:
            check_holiday_calendar(str(country), [str(c) for c in categories])
        except UnknownHolidayCountry:
            raise DomainConfigError(
                f"{key}.holidays.country: '{country}' has no holiday calendar"
            ) from None
        except ValueError as error:
            raise DomainConfigError(f"{key}.holidays.categories: {error}") from None
    closed: set[dt.date] = set()
    for index, day in enumerate(data.get("extra_closed_days") or []):
        try:
            closed.add(day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day)))
        except ValueError:
            raise DomainConfigError(
                f"{key}.extra_closed_days[{index}]: '{day}' is not a date (YYYY-MM-DD)"
            ) from None
    return WorkingHours(
        weekly=tuple(weekly),
        holiday_country=str(country) if country is not None else None,
        holiday_categories=tuple(str(c) for c in categories),
        extra_closed_days=frozenset(closed),
    )


def _keywords(value: object, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise DomainConfigError(f"{key}: expected a list of words")
    return tuple(str(word).lower() for word in value)


def domain_from_mapping(data: object, source: str) -> DomainConfig:
    """Validate a parsed YAML document and build the domain configuration."""
    root = _mapping(data, "(top level)")
    working_hours = _working_hours(_mapping(_require(root, "working_hours", ""), "working_hours"))

    steps_data = _mapping(_require(root, "sop_steps", ""), "sop_steps")
    steps: dict[SopStep, BusinessDuration] = {}
    for step in _CONFIG_STEPS:
        value = _require(steps_data, step.value, "sop_steps")
        if value is None or value is False:
            continue  # the step's clock is switched off
        steps[step] = parse_duration(value, f"sop_steps.{step.value}")
    unknown = set(steps_data) - {s.value for s in _CONFIG_STEPS}
    if unknown:
        raise DomainConfigError(f"sop_steps.{sorted(unknown)[0]}: unknown step")

    priorities_data = _mapping(_require(root, "priorities", ""), "priorities")
    if not priorities_data:
        raise DomainConfigError("priorities: at least one priority is needed")
    priorities = []
    for code, item in priorities_data.items():
        key = f"priorities.{code}"
        item = _mapping(item, key)
        priorities.append(
            Priority(
                code=str(code),
                label=str(_require(item, "label", key)),
                resolve_within=parse_duration(
                    _require(item, "resolve_within", key), f"{key}.resolve_within"
                ),
                example=str(item.get("example", "")),
            )
        )
    codes = {p.code for p in priorities}

    categories_data = _require(root, "categories", "")
    if not isinstance(categories_data, list) or not categories_data:
        raise DomainConfigError("categories: expected a non-empty list")
    categories = []
    seen: set[str] = set()
    for index, item in enumerate(categories_data):
        key = f"categories[{index}]"
        item = _mapping(item, key)
        code = str(_require(item, "code", key))
        if code in seen:
            raise DomainConfigError(f"{key}.code: '{code}' is used twice")
        seen.add(code)
        default_priority = str(_require(item, "default_priority", key))
        if default_priority not in codes:
            raise DomainConfigError(
                f"{key}.default_priority: '{default_priority}' is not one of the priorities "
                f"({', '.join(sorted(codes))})"
            )
        short_label = str(item.get("short_label") or "")
        if len(short_label) > SHORT_LABEL_CHARS:
            raise DomainConfigError(
                f"{key}.short_label: at most {SHORT_LABEL_CHARS} characters, "
                f"'{short_label}' has {len(short_label)}"
            )
        categories.append(
            Category(
                code=code,
                label=str(_require(item, "label", key)),
                short_label=short_label,
                default_priority=default_priority,
                keywords=_keywords(item.get("keywords"), f"{key}.keywords"),
            )
        )
    fallback = str(root.get("fallback_category", categories[-1].code))
    if fallback not in seen:
        raise DomainConfigError(f"fallback_category: '{fallback}' is not a category code")
    return DomainConfig(
        priorities=tuple(priorities),
        categories=tuple(categories),
        sop_steps=steps,
        working_hours=working_hours,
        urgency_keywords=_keywords(root.get("urgency_keywords"), "urgency_keywords"),
        fallback_category=fallback,
        source=source,
        answer_templates=_answer_templates(root.get("answer_templates"), seen),
    )


ANSWER_STEPS = ("data_request", "solution", "escalation")


def _answer_templates(value: object, categories: set[str]) -> tuple[CannedAnswer, ...]:
    """The `answer_templates` list (optional): canned answers for the bot's picker."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise DomainConfigError("answer_templates: expected a list")
    answers = []
    codes: set[str] = set()
    for index, item in enumerate(value):
        key = f"answer_templates[{index}]"
        item = _mapping(item, key)
        code = str(_require(item, "code", key))
        if code in codes:
            raise DomainConfigError(f"{key}.code: '{code}' is used twice")
        codes.add(code)
        step = str(_require(item, "step", key))
        if step not in ANSWER_STEPS:
            raise DomainConfigError(f"{key}.step: '{step}' is not one of {', '.join(ANSWER_STEPS)}")
        fits = item.get("categories") or []
        if not isinstance(fits, list):
            raise DomainConfigError(f"{key}.categories: expected a list of category codes")
        # Codes of categories this file does not have (a copy with other categories) are
        # dropped: the template then shows under "Lainnya" for every category.
        fits = [c for c in fits if str(c) in categories]
        title = str(_require(item, "title", key)).strip()
        body = str(_require(item, "body", key)).strip()
        if not title or not body:
            raise DomainConfigError(f"{key}: title and body must not be empty")
        answers.append(CannedAnswer(code, step, title[:120], body, tuple(str(c) for c in fits)))
    return tuple(answers)


def load_domain(path: Path | None = None) -> DomainConfig:
    """Load HELPDESK_SOP_FILE when given, else the packaged defaults."""
    if path is None:
        text = resources.files("lpse_helpdesk.domain").joinpath("defaults.yaml").read_text("utf-8")
        source = "(bawaan)"
    else:
        try:
            text = path.read_text("utf-8")
        except OSError as error:
            raise DomainConfigError(f"cannot read {path}: {error.strerror}") from None
        source = str(path)
    try:
        data = yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", error)
        raise DomainConfigError(f"not valid YAML{where}: {problem}") from None
    return domain_from_mapping(data, source)
