"""Who did something, for the audit trail."""

from __future__ import annotations

from dataclasses import dataclass

from lpse_helpdesk.storage.models import Channel


@dataclass(frozen=True)
class Actor:
    channel: Channel
    id: str | None = None
    name: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(Channel.SYSTEM, None, "sistem")

    @classmethod
    def telegram(cls, user_id: int, name: str) -> Actor:
        return cls(Channel.TELEGRAM, str(user_id), name)

    @classmethod
    def email(cls, address: str, name: str | None = None) -> Actor:
        return cls(Channel.EMAIL, address, name)
