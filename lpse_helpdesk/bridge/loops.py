"""Mail-loop rules for outbound mail: who we must never write to, and the hourly cap.

Pure functions; the caller looks up what was sent and decides what to do with a refusal.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

__all__ = ["HOUR", "canonical_address", "over_hourly_cap", "refusal_reason"]

HOUR = timedelta(hours=1)

# The local part, lower-cased with ".", "-" and "_" removed, contains one of these.
_NO_REPLY_WORDS = ("noreply", "donotreply", "dontreply", "nobalas", "jangandibalas")
# Bounce handlers and VERP return paths: "bounce", "bounces+x=y", "msprvs1=...=bounces-1".
_BOUNCE = re.compile(r"(?:^|[._+=-])bounces?(?:$|[._+=-])")
_LOCAL_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def canonical_address(address: str) -> str | None:
    """``address`` lower-cased with an ASCII (IDNA) domain, or None when it is not valid.

    Only plain ``local@domain`` addresses are accepted: no display names, no quoted local
    parts, no address literals.
    """
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or len(local) > 64 or not _LOCAL_ATOM.fullmatch(local):
        return None
    try:
        domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = domain.split(".")
    if len(domain) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    return f"{local.lower()}@{domain}"


def _without_subaddress(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def refusal_reason(address: str, *, own_addresses: Collection[str]) -> str | None:
    """Why no mail may be sent to ``address``, in English; None when it may.

    Refused: invalid addresses, our own addresses (also with a ``+tag``), no-reply addresses,
    MAILER-DAEMON, postmaster and bounce addresses.
    """
    canonical = canonical_address(address)
    if canonical is None:
        return "invalid address"
    own = {_without_subaddress(a) for a in map(canonical_address, own_addresses) if a}
    if _without_subaddress(canonical) in own:
        return "own address"
    local = canonical.partition("@")[0]
    squeezed = re.sub(r"[._-]", "", local)
    if any(word in squeezed for word in _NO_REPLY_WORDS):
        return "no-reply address"
    if squeezed == "mailerdaemon":
        return "mailer-daemon address"
    if local == "postmaster":
        return "postmaster address"
    if _BOUNCE.search(local):
        return "bounce address"
    return None


def over_hourly_cap(sent_times: Sequence[datetime], now: datetime, cap: int) -> bool:
    """Whether one more automatic mail would exceed ``cap`` mails in the last hour.

    ``sent_times`` are when automatic mails to the address were sent (timezone-aware); a time
    within the hour before ``now`` counts, and so does one after ``now`` (clock skew).
    """
    if cap <= 0:
        return True
    since = now - HOUR
    return sum(1 for sent in sent_times if sent > since) >= cap
