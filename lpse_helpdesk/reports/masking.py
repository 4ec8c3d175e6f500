"""Mask e-mail addresses in recaps shared outside the LPSE.

"siti@vendor.co.id" becomes "s***@v***.co.id".
"""

from __future__ import annotations

# Second-level names under .id (PANDI) kept whole, so "vendor.co.id" keeps ".co.id".
_ID_SECOND_LEVEL = frozenset(
    {"ac", "biz", "co", "desa", "go", "mil", "my", "net", "or", "ponpes", "sch", "web"}
)
_HIDDEN = "***"


def _mask_label(label: str) -> str:
    return (label[:1] + _HIDDEN) if label else _HIDDEN


def _public_suffix(labels: list[str]) -> list[str]:
    if len(labels) >= 3 and labels[-1] == "id" and labels[-2] in _ID_SECOND_LEVEL:
        return labels[-2:]
    return labels[-1:] if len(labels) >= 2 else []


def mask_email(address: str) -> str:
    """First letter of the mailbox and of the domain name; the public suffix stays."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local:
        return _mask_label(address.strip()) if address.strip() else ""
    labels = [label for label in domain.lower().split(".") if label]
    suffix = _public_suffix(labels)
    name = labels[: len(labels) - len(suffix)]
    masked_domain = ".".join([_mask_label(name[-1] if name else ""), *suffix])
    return f"{_mask_label(local)}@{masked_domain}"
