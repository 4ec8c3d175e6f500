"""The operator's documents name every setting the service reads."""

from pathlib import Path

from lpse_helpdesk.config.settings import Settings

ROOT = Path(__file__).parents[1]


def test_env_example_lists_every_setting_with_a_comment() -> None:
    lines = (ROOT / ".env.example").read_text("utf-8").splitlines()
    names = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    assert names == set(Settings.model_fields)
    for index, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[index - 1].startswith("# "), f"{line} has no comment above it"


def test_readme_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    missing = [name for name in Settings.model_fields if f"`{name}`" not in readme]
    assert missing == []
