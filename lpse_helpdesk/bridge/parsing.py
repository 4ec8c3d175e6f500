"""Parse raw mail bytes into a ``ParsedMail``: pure, no I/O, and it never raises.

Header values are read raw and decoded here (RFC 2047 words, 8-bit bytes, unknown charsets), so
one malformed header cannot break the whole mail. The MIME structure is read with
``email.policy.default``; if that fails on a pathological mail the mail is read again with the
``compat32`` policy, and if that fails too a minimal ``ParsedMail`` is built from the bytes.
Every problem found is listed in ``ParsedMail.defects`` in plain English.

Addresses are lower-cased. Message-IDs are kept without angle brackets and whitespace and are
otherwise compared as they are (case-sensitive).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import datetime as dt
import email
import email.message
import email.parser
import email.policy
import email.utils
import hashlib
import html as html_lib
import mimetypes
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from lpse_helpdesk.bridge.quotes import strip_quoted
from lpse_helpdesk.bridge.tags import forward_prefix

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SYNTHETIC_ID_DOMAIN",
    "AttachmentInfo",
    "DeliveryReport",
    "ParsedMail",
    "decode_bytes",
    "decode_header_value",
    "is_machine_address",
    "normalise_message_id",
    "parse_mail",
    "parse_message_ids",
    "synthetic_message_id",
]

DEFAULT_MAX_BYTES = 25 * 1024 * 1024
SYNTHETIC_ID_DOMAIN = "lpse-helpdesk.invalid"
MAX_TEXT_CHARS = 1_000_000  # text and HTML beyond this are cut (a card needs far less)
_MAX_DEPTH = 30
_MAX_PARTS = 500

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_SPACES = re.compile(r"\s+")
# Was <\s*([^<>]*?)\s*> (a lazy run and \s* competing for the same blanks: cubic on "<" and
# spaces); now one run up to the next bracket, its blanks stripped by the callers.
_ANGLE_ID = re.compile(r"<([^<>]*+)>")
_CID_REF = re.compile(r"""cid:([^"'\s>)]+)""", re.IGNORECASE)
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
# Was <[^>]*> (every "<" rescanned the rest of an unclosed text: quadratic); stops at "<".
_TAG = re.compile(r"<[^<>]*+>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
_MACHINE_LOCAL = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer[-_.]?daemon|postmaster|bounces?"
    r"|mail[-_.]?delivery[-_.]?subsystem)(?:[-+._].*)?$",
    re.IGNORECASE,
)
# Single-byte Western charsets that are often declared for text that is really UTF-8.
_WESTERN = {"ascii", "latin_1", "iso8859_1", "iso8859_15", "cp1252"}


@dataclass(frozen=True)
class AttachmentInfo:
    filename: str
    content_type: str
    size: int
    inline: bool  # shown inside the HTML (a referenced cid: image) or marked inline
    content_id: str | None  # without angle brackets
    payload: bytes | None  # None when omitted
    omitted_reason: str | None  # why payload is None


@dataclass(frozen=True)
class DeliveryReport:
    """Delivery-report details found in the MIME structure (empty for ordinary mail)."""

    report_type: str | None = None  # multipart/report's report-type, e.g. "delivery-status"
    original_message_ids: tuple[str, ...] = ()  # of embedded message/rfc822 or header parts
    final_recipients: tuple[str, ...] = ()  # from message/delivery-status
    actions: tuple[str, ...] = ()  # "failed", "delayed", "delivered", ...
    statuses: tuple[str, ...] = ()  # "5.1.1", "4.4.7", ...
    diagnostics: tuple[str, ...] = ()  # Diagnostic-Code values

    @property
    def has_delivery_status(self) -> bool:
        return bool(self.final_recipients or self.actions or self.statuses)


@dataclass(frozen=True)
class ParsedMail:
    message_id: str
    has_message_id: bool
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    from_name: str
    from_address: str
    reply_to_address: str | None
    requester_name: str
    requester_address: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    date: dt.datetime | None  # aware, UTC
    text: str  # the readable text: text/plain parts, or the HTML converted
    stripped_text: str  # text without quoted history and client footers
    html: str | None
    attachments: tuple[AttachmentInfo, ...]
    defects: tuple[str, ...]
    size: int  # bytes of the raw mail
    auto_submitted: str | None  # lower-cased Auto-Submitted value
    headers: tuple[tuple[str, str], ...] = ()  # decoded top-level headers, in order
    content_type: str = "text/plain"  # top-level, lower-case
    report: DeliveryReport = field(default_factory=DeliveryReport)

    def header(self, name: str) -> str | None:
        """The first decoded top-level header of that name (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def header_values(self, name: str) -> tuple[str, ...]:
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key.lower() == wanted)

    @property
    def return_path(self) -> str | None:
        """The Return-Path address without brackets ("" for the null path), or None."""
        value = self.header("Return-Path")
        if value is None:
            return None
        match = _ANGLE_ID.search(value)
        return (match.group(1) if match else value).strip().lower()


# --------------------------------------------------------------------------- policy

#: Header objects already made, by (name, raw value); see ``_SharedHeaders``.
#: Header values read by ``_simple_mime_header`` (small strings), kept across mails: a
#: backlog repeats "text/plain; charset=utf-8" and "base64" in every mail.
_SIMPLE_HEADERS: dict[tuple[str, str], str] = {}
_SIMPLE_HEADERS_MAX = 4096  # entries; the dict is emptied when it is full
#: Header objects of the standard policy, kept for one mail only (see _parse): one of a
#: 60-character value holds some 17 KB of parse tree.
_HEADER_OBJECTS: dict[tuple[str, str], object] = {}
_HEADER_OBJECTS_MAX = 64
_HEADER_CHARS = 300  # longer values are parsed on every read, as the standard policy does


class _SharedHeaders(email.policy.EmailPolicy):
    """``email.policy.default`` that reads each distinct header once.

    The standard policy parses a header into an object on every read: the MIME walk reads a
    part's Content-Type a dozen times (type, main type, charset, boundary, file name...),
    and that parsing was the largest cost of reading a mail. Plain MIME headers are read
    without the parser (``_simple_mime_header``, kept across mails); the objects of the
    others are immutable and reused within the mail. The values read are exactly those of
    the standard policy.
    """

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if not isinstance(value, str) or len(value) > _HEADER_CHARS:
            return super().header_fetch_parse(name, value)
        key = (name, value)
        simple = _SIMPLE_HEADERS.get(key)
        if simple is not None:
            return simple
        made = _HEADER_OBJECTS.get(key)
        if made is not None:
            return made
        simple = _simple_mime_header(name, value)
        if simple is not None:
            if len(_SIMPLE_HEADERS) >= _SIMPLE_HEADERS_MAX:
                _SIMPLE_HEADERS.clear()
            _SIMPLE_HEADERS[key] = simple
            return simple
        made = super().header_fetch_parse(name, value)
        if len(_HEADER_OBJECTS) < _HEADER_OBJECTS_MAX:
            _HEADER_OBJECTS[key] = made
        return made


_POLICY = _SharedHeaders()

# A Content-Type or Content-Disposition as mail programs write it: "type/subtype" or
# "attachment", then parameters "; name=value" or '; name="value"' with plain characters
# only. The standard policy's header object of such a value reads (str) as the value with
# each parameter written '; name="value"', and the MIME walk reads nothing else of it
# (the Message methods take str() of what they get). Values of any other form go to the
# standard parser.
_MIME_WORD = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*+"
_SIMPLE_PARAMS = r"((?:; ?[a-z][a-z0-9-]*+=(?:[A-Za-z0-9._+-]++|\"[A-Za-z0-9._=+-]++\"))*+)"
_SIMPLE_CONTENT_TYPE = re.compile(rf"{_MIME_WORD}/{_MIME_WORD}(?={_SIMPLE_PARAMS}$)")
_SIMPLE_DISPOSITION = re.compile(rf"{_MIME_WORD}(?={_SIMPLE_PARAMS}$)")
_SIMPLE_ENCODING = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*+")  # "base64", "7bit", ...
_SIMPLE_PARAM = re.compile(r'; ?([a-z][a-z0-9-]*+)="?+([^";]++)')


def _simple_mime_header(name: str, value: str) -> str | None:
    """str() of the standard policy's header object for a simple MIME header, else None."""
    lowered = name.lower()
    if lowered == "content-transfer-encoding":
        return value if _SIMPLE_ENCODING.fullmatch(value) else None
    if lowered == "content-type":
        match = _SIMPLE_CONTENT_TYPE.match(value)
    elif lowered == "content-disposition":
        match = _SIMPLE_DISPOSITION.match(value)
    else:
        return None
    if match is None:
        return None
    params = _SIMPLE_PARAM.findall(value, match.end())
    if not params:
        return value[: match.end()]
    if len({param for param, _ in params}) != len(params):
        return None  # a repeated parameter: the standard parser keeps the first one
    rendered = "; ".join(f'{param}="{text}"' for param, text in params)
    return f"{value[: match.end()]}; {rendered}"


# --------------------------------------------------------------------------- decoding


def _normalise_charset(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip("\"'").split("*")[0].strip()
    if not name:
        return None
    try:
        return codecs.lookup(name).name.replace("-", "_")
    except (LookupError, ValueError):
        return ""


def decode_bytes(data: bytes, charset: str | None, defects: list[str], where: str) -> str:
    """Decode text bytes: declared charset, then UTF-8, windows-1252, latin-1. Never raises.

    ISO-8859-1 and US-ASCII are read as windows-1252 (as browsers do), and a Western charset
    declared for bytes that are valid UTF-8 is taken to be a mislabel.
    """
    declared = _normalise_charset(charset)
    if declared == "":
        defects.append(f"undecodable charset {charset.strip() if charset else ''} in {where}")
        declared = None
    if declared in {"ascii", "latin_1", "iso8859_1"}:
        declared = "cp1252"
    if declared in _WESTERN and not data.isascii():
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            defects.append(f"{where} is declared {charset} but is UTF-8")
            return text
    candidates = [c for c in (declared, "utf-8", "cp1252") if c]
    for candidate in dict.fromkeys(candidates):
        try:
            return data.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            if candidate == declared:
                defects.append(f"{where} is not valid {charset}")
        except Exception:  # exotic codecs can fail in other ways
            defects.append(f"{where} could not be decoded as {candidate}")
    return data.decode("latin-1", errors="replace")


def _raw_bytes(value: str) -> bytes:
    """Recover the original bytes of a header value read by the bytes parser."""
    return value.encode("utf-8", errors="surrogateescape")


def _decode_word(charset: str, encoding: str, payload: str) -> bytes | None:
    try:
        if encoding.lower() == "b":
            cleaned = payload.strip()
            return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))
        data = payload.replace("_", " ").encode("ascii", errors="replace")
        return re.sub(rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), data)
    except (binascii.Error, ValueError):
        return None


def decode_header_value(raw: str, defects: list[str] | None = None, where: str = "header") -> str:
    """Unfold a raw header value and decode RFC 2047 words and 8-bit bytes. Never raises."""
    sink: list[str] = defects if defects is not None else []
    value = _FOLD.sub("", raw).replace("\r", "").replace("\n", " ")
    if not value.isascii():  # also true for the surrogates that stand for 8-bit bytes
        data = _raw_bytes(value)
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            value = decode_bytes(data, None, sink, where)
            sink.append(f"8-bit bytes that are not UTF-8 in {where}")
    if "=?" not in value:
        return value
    pieces: list[str] = []
    position = 0
    pending: tuple[str, bytearray] | None = None  # adjacent words of one charset join bytes

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            pieces.append(decode_bytes(bytes(pending[1]), pending[0], sink, where))
            pending = None

    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        if pending is None or between.strip():
            flush()
            pieces.append(between)
        charset, encoding, payload = match.groups()
        decoded = _decode_word(charset, encoding, payload)
        if decoded is None:
            flush()
            sink.append(f"invalid encoded word in {where}")
            pieces.append(match.group(0))
        elif pending is not None and pending[0].lower() == charset.lower():
            pending[1].extend(decoded)
        else:
            flush()
            pending = (charset, bytearray(decoded))
        position = match.end()
    flush()
    pieces.append(value[position:])
    return "".join(pieces)


def _collapse(value: str) -> str:
    return _SPACES.sub(" ", _CONTROL.sub("", value)).strip()


def _clean_text(value: str) -> str:
    """Unify line ends and drop control characters (they break chat cards and logs)."""
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def normalise_message_id(value: str) -> str:
    """``<abc@example.com>`` -> ``abc@example.com``; "" when there is nothing."""
    match = _ANGLE_ID.search(value)
    inner = match.group(1) if match else value
    return "".join(inner.split())  # also drops the blanks inside the brackets


def parse_message_ids(value: str) -> tuple[str, ...]:
    """All Message-IDs of an In-Reply-To or References value, in order, without duplicates."""
    ids = [("".join(m.split())) for m in _ANGLE_ID.findall(value)]
    if not ids:
        ids = [token.strip(",;") for token in value.split() if "@" in token]
    return tuple(dict.fromkeys(i for i in ids if i))


def synthetic_message_id(raw: bytes) -> str:
    """The repeatable id given to a mail without Message-ID."""
    return f"sha256-{hashlib.sha256(raw).hexdigest()[:32]}@{SYNTHETIC_ID_DOMAIN}"


def is_machine_address(address: str) -> bool:
    """True for no-reply, mailer-daemon, postmaster and bounce addresses."""
    local = address.rpartition("@")[0] if "@" in address else address
    return bool(_MACHINE_LOCAL.match(local.strip()))


#: _address_header results by (raw value, header name): a backlog has the same To and the
#: same few senders over and over, and the address parser is slow.
_ADDRESS_HEADERS: dict[tuple[str, str], tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = {}
_ADDRESS_HEADERS_MAX = 2048
_ADDRESS_HEADER_CHARS = 500  # longer values are parsed each time (and not kept)


def _addresses(values: Iterable[str], defects: list[str], where: str) -> list[tuple[str, str]]:
    """(display name, lower-case address) pairs of raw address headers."""
    result: list[tuple[str, str]] = []
    for raw in values:
        if len(raw) > _ADDRESS_HEADER_CHARS:
            pairs, found = _address_header(raw, where)
        else:
            key = (raw, where)
            known = _ADDRESS_HEADERS.get(key)
            if known is None:
                known = _address_header(raw, where)
                if len(_ADDRESS_HEADERS) >= _ADDRESS_HEADERS_MAX:
                    _ADDRESS_HEADERS.clear()
                _ADDRESS_HEADERS[key] = known
            pairs, found = known
        result.extend(pairs)
        defects.extend(found)
    return result


def _address_header(raw: str, where: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """The pairs of one raw address header and the defects found in it."""
    defects: list[str] = []
    result: list[tuple[str, str]] = []
    unfolded = _FOLD.sub("", raw)
    try:
        pairs = email.utils.getaddresses([unfolded])
    except Exception:
        return (), (f"unparseable {where} header",)
    for name, address in pairs:
        address = decode_header_value(address, defects, where).strip().strip("<>").lower()
        if "@" not in address:
            if address or name:
                defects.append(f"invalid address in {where} header")
            continue
        result.append((_collapse(decode_header_value(name, defects, where)), address))
    return tuple(result), tuple(defects)


def _date(value: str | None, defects: list[str]) -> dt.datetime | None:
    if value is None:
        defects.append("missing Date header")
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.append("unparseable Date header")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        defects.append("unparseable Date header")
        return None


def _html_to_text(markup: str, defects: list[str]) -> str:
    try:
        from inscriptis import get_text  # imported here: a heavy import only HTML mail needs

        text = str(get_text(markup))
    except Exception:
        defects.append("HTML could not be converted; tags were removed instead")
        text = html_lib.unescape(_TAG.sub(" ", markup))
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --------------------------------------------------------------------------- structure


@dataclass
class _Attachment:
    filename: str
    content_type: str
    disposition: str | None
    content_id: str | None
    payload: bytes
    size: int = -1  # when the payload was not decoded: its estimated size


@dataclass
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)


@dataclass
class _Walk:
    defects: list[str]
    attachments: list[_Attachment] = field(default_factory=list)
    embedded_ids: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    diagnostics: list[str] = field(default_factory=list)
    parts: int = 0
    #: False for a mail over max_bytes: attachments are listed, never decoded (memory).
    decode_attachments: bool = True


def _describe_defect(defect: object) -> str:
    name = type(defect).__name__.removesuffix("Defect")
    words = _CAMEL.sub(" ", name).lower()
    return f"MIME: {words}"


def _part_defects(part: email.message.Message, walk: _Walk) -> None:
    for defect in getattr(part, "defects", ()):
        walk.defects.append(_describe_defect(defect))


def _raw_header(part: email.message.Message, name: str) -> str | None:
    wanted = name.lower()
    for key, value in part.raw_items():
        if key.lower() == wanted:
            return str(value)
    return None


def _safe_filename(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _collapse(_UNSAFE_FILENAME.sub(" ", name)).lstrip(".")
    return name[:200]


def _default_filename(content_type: str, index: int) -> str:
    if content_type == "application/ms-tnef":
        return "winmail.dat"
    if content_type in {"message/rfc822", "message/global"}:
        return f"message-{index}.eml"
    extension = mimetypes.guess_extension(content_type, strict=False) or ".bin"
    return f"attachment-{index}{extension}"


def _filename(part: email.message.Message, walk: _Walk) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        walk.defects.append("unreadable attachment file name")
        return None
    if not name:
        return None
    return _safe_filename(decode_header_value(str(name), walk.defects, "file name")) or None


def _payload_bytes(part: email.message.Message, walk: _Walk) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        walk.defects.append("undecodable part body")
        data = None
    if isinstance(data, bytes):
        return data
    payload = part.get_payload()
    if isinstance(payload, str):
        return _raw_bytes(payload)
    return b""


def _charset(part: email.message.Message) -> str | None:
    try:
        value = part.get_param("charset")
    except Exception:
        return None
    if isinstance(value, tuple):  # RFC 2231 (charset, language, value)
        value = value[2]
    return str(value) if value else None


def _text_of(part: email.message.Message, walk: _Walk, where: str) -> str:
    data = _payload_bytes(part, walk)
    if len(data) > MAX_TEXT_CHARS:
        walk.defects.append(f"{where} is longer than {MAX_TEXT_CHARS} bytes and was cut")
        data = data[:MAX_TEXT_CHARS]
    return decode_bytes(data, _charset(part), walk.defects, where)


def _message_id_of(part: email.message.Message) -> str | None:
    raw = _raw_header(part, "Message-ID")
    if raw is None:
        return None
    return normalise_message_id(decode_header_value(raw)) or None


def _delivery_status(blocks: list[email.message.Message], walk: _Walk) -> None:
    for block in blocks:
        for key, raw in block.raw_items():
            name = key.lower()
            value = _collapse(decode_header_value(str(raw)))
            if name == "final-recipient":
                address = value.split(";", 1)[-1].strip().strip("<>").lower()
                if "@" in address:
                    walk.recipients.append(address)
            elif name == "action":
                walk.actions.append(value.lower())
            elif name == "status":
                walk.statuses.append(value.split()[0] if value else value)
            elif name == "diagnostic-code":
                walk.diagnostics.append(value)


def _text_delivery_status(text: str, walk: _Walk) -> None:
    block = email.message_from_string(
        "\n".join(line for line in text.splitlines() if line.strip()) + "\n\n",
        policy=email.policy.compat32,
    )
    _delivery_status([block], walk)


def _embedded(part: email.message.Message, walk: _Walk, index: int) -> None:
    """A message/rfc822 (or similar) part: remember its Message-ID, list it as attachment."""
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(inner, email.message.Message):
        walk.attachments.append(
            _Attachment(f"message-{index}.eml", part.get_content_type(), None, None, b"")
        )
        return
    message_id = _message_id_of(inner)
    if message_id:
        walk.embedded_ids.append(message_id)
    if part.get_content_type().endswith("-headers"):
        return
    try:
        data = inner.as_bytes(policy=email.policy.compat32)
    except Exception:
        walk.defects.append("embedded message could not be re-serialised")
        data = b""
    name = _filename(part, walk)
    if name is None:
        subject = _raw_header(inner, "Subject")
        subject = _safe_filename(_collapse(decode_header_value(subject))) if subject else ""
        name = f"{subject[:80]}.eml" if subject else f"message-{index}.eml"
    walk.attachments.append(
        _Attachment(name, part.get_content_type(), part.get_content_disposition(), None, data)
    )


def _leaf(part: email.message.Message, walk: _Walk, body: _Body) -> None:
    content_type = part.get_content_type()
    disposition = part.get_content_disposition()
    filename = _filename(part, walk)
    if content_type in {"text/plain", "text/html"} and disposition != "attachment" and not filename:
        where = "HTML part" if content_type == "text/html" else "text part"
        text = _text_of(part, walk, where)
        (body.html if content_type == "text/html" else body.plain).append(text)
        return
    if content_type == "text/rfc822-headers":
        text = _text_of(part, walk, content_type)
        headers = email.message_from_string(text + "\n\n", policy=email.policy.compat32)
        message_id = _message_id_of(headers)
        if message_id:
            walk.embedded_ids.append(message_id)
        return
    raw_cid = _raw_header(part, "Content-ID")
    content_id = normalise_message_id(decode_header_value(raw_cid)) if raw_cid else None
    if (filename or "").lower() == "winmail.dat":
        content_type = "application/ms-tnef"
    payload, size = b"", -1
    if walk.decode_attachments:
        payload = _payload_bytes(part, walk)
    else:
        encoded = part.get_payload()
        size = len(encoded) if isinstance(encoded, str) else 0
        if str(part.get("Content-Transfer-Encoding", "")).strip().lower() == "base64":
            size = size * 3 // 4
    walk.attachments.append(
        _Attachment(
            filename or _default_filename(content_type, len(walk.attachments) + 1),
            content_type,
            disposition,
            content_id or None,
            payload,
            size,
        )
    )


def _walk(part: email.message.Message, walk: _Walk, body: _Body, depth: int) -> None:
    walk.parts += 1
    if walk.parts > _MAX_PARTS or depth > _MAX_DEPTH:
        if walk.parts == _MAX_PARTS + 1 or depth == _MAX_DEPTH + 1:
            walk.defects.append("too many or too deeply nested MIME parts; the rest was skipped")
        return
    _part_defects(part, walk)
    content_type = part.get_content_type()
    payload = part.get_payload()
    if content_type in {"message/delivery-status", "message/global-delivery-status"}:
        if isinstance(payload, list):
            _delivery_status([p for p in payload if isinstance(p, email.message.Message)], walk)
        else:
            _text_delivery_status(_text_of(part, walk, "delivery status"), walk)
        return
    if content_type in {
        "message/disposition-notification",
        "message/global-disposition-notification",
    }:
        blocks = payload if isinstance(payload, list) else []
        for block in blocks:
            if not isinstance(block, email.message.Message):
                continue
            original = _raw_header(block, "Original-Message-ID")
            message_id = normalise_message_id(decode_header_value(original or ""))
            if message_id:
                walk.embedded_ids.append(message_id)
        return
    if content_type.startswith("message/") and isinstance(payload, list):
        _embedded(part, walk, len(walk.attachments) + 1)
        return
    if not isinstance(payload, list):
        if content_type.startswith("multipart/"):
            walk.defects.append(f"{content_type} part without readable sub-parts")
            body.plain.append(_text_of(part, walk, "text part"))
            return
        _leaf(part, walk, body)
        return
    children = [p for p in payload if isinstance(p, email.message.Message)]
    if content_type != "multipart/alternative":
        for child in children:
            _walk(child, walk, body, depth + 1)
        return
    branches: list[_Body] = []
    for child in children:
        branch = _Body()
        _walk(child, walk, branch, depth + 1)
        branches.append(branch)
    plain = [b for b in branches if any(t.strip() for t in b.plain)]
    html = [b for b in branches if any(t.strip() for t in b.html)]
    if plain:
        body.plain.extend(plain[0].plain)
    if html:
        body.html.extend(html[-1].html)


# --------------------------------------------------------------------------- assembly


def _frozen_attachments(
    attachments: list[_Attachment], html: str | None, omitted: str | None
) -> tuple[AttachmentInfo, ...]:
    referenced = {ref.strip("<>").lower() for ref in _CID_REF.findall(html or "")}
    result = []
    for item in attachments:
        cid = item.content_id
        inline = bool(cid and cid.lower() in referenced) or (
            item.disposition == "inline" and not item.content_type.startswith("text/")
        )
        result.append(
            AttachmentInfo(
                filename=item.filename,
                content_type=item.content_type,
                size=item.size if item.size >= 0 else len(item.payload),
                inline=inline,
                content_id=cid,
                payload=None if omitted else item.payload,
                omitted_reason=omitted,
            )
        )
    return tuple(result)


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().rstrip(".").lower()


def _choose_requester(
    sender: tuple[str, str] | None, reply_to: list[tuple[str, str]]
) -> tuple[str, str]:
    """Who the helpdesk answers: Reply-To only when it is at From's domain (a colleague's
    or a shared mailbox of the same office); any other Reply-To would let a stranger make
    the helpdesk mail a third party, so the answer goes to From (both stay on record)."""
    if len(reply_to) == 1:
        name, address = reply_to[0]
        if sender is None:
            if not is_machine_address(address):
                return name, address  # no From at all: Reply-To is the only address there is
        elif (
            not is_machine_address(address)
            and _domain(address) == _domain(sender[1])
            and address != sender[1]
        ):
            return name, address
    if sender is not None:
        return sender
    return ("", "")


# The header block as the standard parser reads it (email.feedparser: every line matches
# its headerRE, lines end at \r\n, \r or \n), then the empty line that ends it.
_HEAD = re.compile(
    r"(?:(?:From |[\x21-\x39\x3b-\x7e]*+:|[\t ])[^\r\n]*+(?:\r\n|\r|\n))*+(?:\r\n|\r|\n)"
)


def _message_from_bytes(raw: bytes, policy: email.policy.Policy) -> email.message.Message:
    """``email.message_from_bytes(raw, policy=policy)``, cheaper for a single-part mail.

    The standard parser reads a single-part body line by line only to join the lines again
    into the payload. So when the header block ends with an empty line and declares neither
    multipart nor message content, only the header block is parsed and the rest of the mail
    becomes the payload as it is: the same message, without a Python call per body line
    (tests/test_fast_paths.py compares the two on random header blocks).
    """
    text = raw.decode("ascii", errors="surrogateescape")  # as email.parser.BytesParser does
    head = _HEAD.match(text)
    # A "From " line after the first one, when last, is pushed back into the body by the
    # standard parser: such header blocks take the standard way.
    if (
        head is not None
        and head.end() < len(text)
        and "\nFrom " not in (block := text[: head.end()])
        and "\rFrom " not in block
        # (and not for what surely is multipart: that would read the header block twice)
        and "multipart/" not in (lowered := block.lower())
        and "message/" not in lowered
    ):
        message = email.parser.Parser(policy=policy).parsestr(block)
        if message.get_content_maintype() not in {"multipart", "message"}:
            message.set_payload(text[head.end() :])
            return message
    return email.parser.Parser(policy=policy).parsestr(text)


def _parse(raw: bytes, max_bytes: int, policy: email.policy.Policy) -> ParsedMail:
    _HEADER_OBJECTS.clear()  # the previous mail's (another thread's parse only misses)
    defects: list[str] = []
    message = _message_from_bytes(raw, policy)
    raw_headers = [(str(k), str(v)) for k, v in message.raw_items()]
    headers = tuple(
        (name, _collapse(decode_header_value(value, defects, f"{name} header")))
        for name, value in raw_headers
    )

    def raw_values(name: str) -> list[str]:
        return [v for k, v in raw_headers if k.lower() == name.lower()]

    def first(name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in headers if k.lower() == wanted), None)

    message_ids = raw_values("Message-ID")
    message_id = normalise_message_id(decode_header_value(message_ids[0])) if message_ids else ""
    if len(message_ids) > 1:
        defects.append("more than one Message-ID header")
    has_message_id = bool(message_id)
    if not has_message_id:
        defects.append("missing Message-ID header")
        message_id = synthetic_message_id(raw)

    from_values = raw_values("From")
    senders = _addresses(from_values, defects, "From")
    if not from_values:
        defects.append("missing From header")
    elif not senders:
        defects.append("unparseable From header")
    elif len(senders) > 1:
        defects.append("more than one From address")
    sender = senders[0] if senders else None
    reply_to = _addresses(raw_values("Reply-To"), defects, "Reply-To")
    requester = _choose_requester(sender, reply_to)

    walk = _Walk(defects, decode_attachments=len(raw) <= max_bytes)
    body = _Body()
    _walk(message, walk, body, 0)
    html = "\n".join(body.html) if body.html else None
    if html is not None and len(html) > MAX_TEXT_CHARS:
        defects.append(f"HTML longer than {MAX_TEXT_CHARS} characters was cut")
        html = html[:MAX_TEXT_CHARS]
    plain = "\n\n".join(t.strip("\r\n") for t in body.plain if t.strip())
    text = _clean_text(plain if plain else _html_to_text(html or "", defects))
    subject = first("Subject") or ""
    omitted = (
        f"mail of {len(raw)} bytes exceeds the {max_bytes} byte limit"
        if len(raw) > max_bytes
        else None
    )
    if omitted:
        defects.append(omitted)
    try:
        report_type = (
            message.get_param("report-type")
            if message.get_content_type() == "multipart/report"
            else None
        )
    except Exception:
        report_type = None
    auto_submitted = first("Auto-Submitted")
    return ParsedMail(
        message_id=message_id,
        has_message_id=has_message_id,
        in_reply_to=parse_message_ids(" ".join(raw_values("In-Reply-To"))),
        references=parse_message_ids(" ".join(raw_values("References"))),
        from_name=sender[0] if sender else "",
        from_address=sender[1] if sender else "",
        reply_to_address=reply_to[0][1] if reply_to else None,
        requester_name=requester[0],
        requester_address=requester[1],
        to=tuple(dict.fromkeys(a for _, a in _addresses(raw_values("To"), defects, "To"))),
        cc=tuple(dict.fromkeys(a for _, a in _addresses(raw_values("Cc"), defects, "Cc"))),
        subject=subject,
        date=_date(first("Date"), defects),
        text=text,
        stripped_text=strip_quoted(text, forwarded=forward_prefix(subject)),
        html=html,
        attachments=_frozen_attachments(walk.attachments, html, omitted),
        defects=tuple(dict.fromkeys(defects)),
        size=len(raw),
        auto_submitted=auto_submitted.strip().lower() if auto_submitted is not None else None,
        headers=headers,
        content_type=message.get_content_type(),
        report=DeliveryReport(
            report_type=str(report_type).strip().lower() if isinstance(report_type, str) else None,
            original_message_ids=tuple(dict.fromkeys(walk.embedded_ids)),
            final_recipients=tuple(dict.fromkeys(walk.recipients)),
            actions=tuple(walk.actions),
            statuses=tuple(walk.statuses),
            diagnostics=tuple(walk.diagnostics),
        ),
    )


def _minimal(raw: bytes, error: Exception) -> ParsedMail:
    """The last resort when the email package cannot read the mail at all."""
    defects = [f"unparseable message ({type(error).__name__})"]
    text = _clean_text(decode_bytes(raw[:MAX_TEXT_CHARS], None, defects, "raw message")).strip()
    return ParsedMail(
        message_id=synthetic_message_id(raw),
        has_message_id=False,
        in_reply_to=(),
        references=(),
        from_name="",
        from_address="",
        reply_to_address=None,
        requester_name="",
        requester_address="",
        to=(),
        cc=(),
        subject="",
        date=None,
        text=text,
        stripped_text=text,
        html=None,
        attachments=(),
        defects=tuple(defects),
        size=len(raw),
        auto_submitted=None,
    )


def parse_mail(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedMail:
    """Parse a raw mail. Never raises; problems are listed in ``defects``.

    Over ``max_bytes`` the headers and text are still read, and the attachments are listed with
    ``payload=None`` and an ``omitted_reason``.
    """
    raw = _as_bytes(raw)
    try:
        return _parse(raw, max_bytes, _POLICY)
    except Exception as first_error:
        try:
            mail = _parse(raw, max_bytes, email.policy.compat32)
        except Exception:
            return _minimal(raw, first_error)
        note = f"read with the compat32 policy after {type(first_error).__name__}"
        return replace(mail, defects=(*mail.defects, note))


def _as_bytes(raw: object) -> bytes:
    """Accept bytes-like input (and, defensively, str) without raising."""
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8", errors="surrogateescape")
    try:
        return bytes(memoryview(raw))  # type: ignore[arg-type]
    except Exception:
        return b""
