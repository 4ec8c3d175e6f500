"""The mail templates: plain-text Jinja2 templates, with an HTML alternative made from the text.

Templates are looked up first in the operator's folder (setting TEMPLATE_DIR), then among the
templates shipped with the package (``lpse_helpdesk/bridge/templates``), so an LPSE can replace
any one of them by putting a file of the same name in its folder. Templates are plain text, so
autoescaping is off; the HTML part is built from the rendered text by escaping all of it, which
keeps staff and user text from ever reaching the HTML unescaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, PackageLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

__all__ = ["RenderedBody", "Renderer", "make_environment", "normalize_text", "text_to_html"]

_PACKAGE = "lpse_helpdesk.bridge"
_PACKAGE_FOLDER = "templates"
_BLANK_LINES = re.compile(r"\n{3,}")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_HTML_STYLE = "font-family: Arial, Helvetica, sans-serif; font-size: 14px; line-height: 1.5;"
#: "Label      : value": a field of a letter, aligned with spaces in the plain text.
_FIELD = re.compile(r"^(\S[^:]{0,40}?)\s+: (.*)$")


def make_environment(template_dir: Path | None = None) -> SandboxedEnvironment:
    """The Jinja2 environment for mail templates: the operator's folder first, then ours.

    Raises NotADirectoryError when ``template_dir`` is given but is not a folder, so a typo in
    the setting is noticed at start-up instead of silently falling back to the defaults.
    """
    loaders: list[BaseLoader] = []
    if template_dir is not None:
        if not template_dir.is_dir():
            raise NotADirectoryError(f"TEMPLATE_DIR {template_dir} is not a directory")
        loaders.append(FileSystemLoader(str(template_dir), encoding="utf-8"))
    loaders.append(PackageLoader(_PACKAGE, _PACKAGE_FOLDER, encoding="utf-8"))
    # Plain-text templates: HTML escaping would corrupt the text; the HTML part is made by
    # text_to_html, which escapes everything.
    return SandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def normalize_text(text: str) -> str:
    """Tidy rendered text: LF line ends, no trailing spaces, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = _BLANK_LINES.sub("\n\n", text).strip("\n")
    return text + "\n"


def text_to_html(text: str, *, title: str = "") -> str:
    """A small HTML document showing ``text``: blank lines make paragraphs, newlines <br>.

    Every character of ``text`` is escaped; no markup from the text survives.
    """
    paragraphs = [p for p in _PARAGRAPH_BREAK.split(normalize_text(text).strip("\n")) if p]
    body = "\n".join(_paragraph_html(paragraph) for paragraph in paragraphs)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="id">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n"
        f'<body style="{_HTML_STYLE}">\n{body}\n</body>\n</html>\n'
    )


def _paragraph_html(paragraph: str) -> str:
    """A paragraph; one whose every line is "Label : value" becomes a two-column table,
    since spaces cannot align fields in a proportional font."""
    lines = paragraph.split("\n")
    matches = [_FIELD.match(line) for line in lines]
    if len(lines) > 1 and all(matches):
        rows = "\n".join(
            f'<tr><td style="padding:0 12px 0 0;vertical-align:top">{html.escape(m.group(1))}'
            f"</td><td>: {html.escape(m.group(2))}</td></tr>"
            for m in matches
            if m is not None
        )
        return f'<table style="border-collapse:collapse">\n{rows}\n</table>'
    return "<p>" + "<br>\n".join(html.escape(line) for line in lines) + "</p>"


@dataclass(frozen=True)
class RenderedBody:
    text: str
    html: str


class Renderer:
    """Renders a named template into its plain text and HTML forms."""

    def __init__(self, template_dir: Path | None = None) -> None:
        self.environment = make_environment(template_dir)

    def render(
        self, template_name: str, variables: Mapping[str, object], *, title: str = ""
    ) -> RenderedBody:
        template = self.environment.get_template(template_name)
        text = normalize_text(template.render(variables))
        return RenderedBody(text=text, html=text_to_html(text, title=title))
