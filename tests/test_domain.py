"""The packaged domain defaults and the errors a bad HELPDESK_SOP_FILE gets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lpse_helpdesk.domain.loader import DomainConfigError, load_domain, parse_duration
from lpse_helpdesk.domain.model import BusinessDuration, SopStep

DEFAULTS = Path(__file__).parents[1] / "lpse_helpdesk" / "domain" / "defaults.yaml"


def test_defaults_follow_the_sop() -> None:
    domain = load_domain()
    assert [p.label for p in domain.priorities] == ["Tinggi", "Menengah", "Rendah"]
    assert domain.sop_steps[SopStep.SET_PRIORITY] == BusinessDuration(minutes=5)
    assert domain.sop_steps[SopStep.REQUEST_DATA] == BusinessDuration(minutes=5)
    assert domain.sop_steps[SopStep.ANALYSE] == BusinessDuration(working_days=1)
    assert domain.sop_steps[SopStep.REPLY_AFTER_SOLVED] == BusinessDuration(minutes=10)
    assert domain.sop_steps[SopStep.ESCALATE_AND_NOTIFY] == BusinessDuration(minutes=5)
    assert domain.step_time(SopStep.RESOLVE, "tinggi") == BusinessDuration(minutes=240)
    assert domain.step_time(SopStep.RESOLVE, None) is None
    assert domain.category("TENDER_UNGGAH_PENAWARAN").default_priority == "tinggi"
    assert domain.fallback_category == "LAINNYA"
    assert domain.working_hours.weekly[5] is None and domain.working_hours.weekly[6] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m", BusinessDuration(minutes=5)),
        ("30 menit", BusinessDuration(minutes=30)),
        ("4 working hours", BusinessDuration(minutes=240)),
        ("2 jam", BusinessDuration(minutes=120)),
        ("1 working day", BusinessDuration(working_days=1)),
        ("3 hari kerja", BusinessDuration(working_days=3)),
    ],
)
def test_durations(text: str, expected: BusinessDuration) -> None:
    assert parse_duration(text, "k") == expected


def _write(tmp_path: Path, mutate: object) -> Path:
    data = yaml.safe_load(DEFAULTS.read_text("utf-8"))
    assert callable(mutate)
    mutate(data)
    path = tmp_path / "sop.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    return path


def _set(path: str, value: object) -> object:
    def mutate(data: dict[str, object]) -> None:
        *parents, last = path.split(".")
        node: object = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]  # type: ignore[index]
        if value is _DELETE:
            del node[last]  # type: ignore[attr-defined]
        else:
            node[int(last) if isinstance(node, list) else last] = value  # type: ignore[index]

    return mutate


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        ("sop_steps.set_priority", "soon", "sop_steps.set_priority: 'soon' is not a duration"),
        ("sop_steps.analyse", _DELETE, "sop_steps.analyse: missing"),
        ("sop_steps.lunch", "5m", "sop_steps.lunch: unknown step"),
        ("priorities.tinggi.resolve_within", "x", "priorities.tinggi.resolve_within"),
        ("priorities.rendah.label", _DELETE, "priorities.rendah.label: missing"),
        ("categories.0.default_priority", "kritis", "categories[0].default_priority: 'kritis'"),
        ("categories.1.code", "AKUN_LUPA_PASSWORD", "categories[1].code: 'AKUN_LUPA_PASSWORD'"),
        ("working_hours.friday", ["16:30", "07:30"], "working_hours.friday: closing time"),
        ("working_hours.monday_thursday", ["7.30", "16:00"], "working_hours.monday_thursday"),
        ("working_hours.extra_closed_days", ["31-12-2026"], "extra_closed_days[0]"),
        ("working_hours.holidays.country", "XX", "working_hours.holidays.country: 'XX'"),
        ("fallback_category", "NOPE", "fallback_category: 'NOPE'"),
        ("working_hours", _DELETE, "working_hours: missing"),
    ],
)
def test_bad_file_names_the_key(tmp_path: Path, path: str, value: object, error: str) -> None:
    with pytest.raises(DomainConfigError) as caught:
        load_domain(_write(tmp_path, _set(path, value)))
    assert error in str(caught.value)


def test_a_file_replaces_the_defaults(tmp_path: Path) -> None:
    def mutate(data: dict[str, object]) -> None:
        data["priorities"] = {
            "kritis": {"label": "Kritis", "resolve_within": "2 working hours"},
            "biasa": {"label": "Biasa", "resolve_within": "2 working days"},
        }
        data["categories"] = [{"code": "UMUM", "label": "Umum", "default_priority": "biasa"}]
        data["fallback_category"] = "UMUM"
        data["sop_steps"]["reply_after_solved"] = None  # type: ignore[index]
        data["working_hours"]["saturday"] = ["08:00", "12:00"]  # type: ignore[index]

    domain = load_domain(_write(tmp_path, mutate))
    assert [p.label for p in domain.priorities] == ["Kritis", "Biasa"]
    assert SopStep.REPLY_AFTER_SOLVED not in domain.sop_steps  # switched off
    assert domain.working_hours.weekly[5] is not None


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(DomainConfigError, match="cannot read"):
        load_domain(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("priorities: [\n", "utf-8")
    with pytest.raises(DomainConfigError, match="not valid YAML"):
        load_domain(broken)
