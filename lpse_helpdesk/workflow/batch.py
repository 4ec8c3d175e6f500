"""The small questions a batch of mails asks per mail, asked once for the whole batch.

For each new ticket the intake asks: is the sender flagged after a bounce? how many
automatic mails did the address get in the last hour (the loop cap)? how many tickets did
it open in the last hour (the flood cap)? For each reply: which ticket do the ids it
answers belong to (its thread)? is an edit of that ticket's card already queued? One query
each, and each query first flushes what the batch wrote so far. A batch of mails stored in
one transaction asks them once, for all its addresses and threads, when it begins
(`BatchLookups.load`), and counts in the rows it adds itself as it adds them; the answers
are the same as the per-mail queries would give.

An address the batch did not load is answered None: the caller asks the database as
before. Attach the lookups to the batch's session with `attach`; callers find them with
`lookups(session)`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lpse_helpdesk.storage.models import (
    FlaggedAddress,
    Message,
    OutboxChannel,
    OutboxItem,
    OutboxStatus,
    Ticket,
)

_KEY = "workflow_batch_lookups"
_CHUNK = 400
HOUR = dt.timedelta(hours=1)


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


@dataclass
class BatchLookups:
    """Answers for the addresses of one batch (all lower case), kept current by the batch."""

    addresses: frozenset[str]
    flagged: set[str] = field(default_factory=set)
    #: Per address: when automatic mails to it were queued (stored before the batch).
    automatic_mails: dict[str, list[dt.datetime]] = field(default_factory=dict)
    #: Per address: automatic mails the batch queued (their status may still change).
    queued: dict[str, list[OutboxItem]] = field(default_factory=lambda: defaultdict(list))
    #: Per requester: when its tickets were received (stored before, or opened by the batch).
    tickets: dict[str, list[dt.datetime]] = field(default_factory=dict)
    #: The Message-IDs the batch's mails answer (In-Reply-To, References) that were loaded.
    thread_ids: frozenset[str] = frozenset()
    #: Message-ID -> ticket of a stored mail, and of a mail we queued (the first one found
    #: wins, as in the per-mail query; stored mails before queued ones).
    stored_ids: dict[str, int] = field(default_factory=dict)
    queued_ids: dict[str, int] = field(default_factory=dict)
    #: Per ticket whose card was looked up: its queued, unclaimed card edit (or None).
    cards: dict[int, OutboxItem | None] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        session: Session,
        addresses: Collection[str],
        *,
        automatic_kinds: Collection[str],
        mails_since: dt.datetime,
        tickets_since: dt.datetime,
        thread_ids: Collection[str] = (),
        now: dt.datetime | None = None,
    ) -> BatchLookups:
        """Three queries for the whole batch, and three for the threads its mails answer
        (`thread_ids`). `mails_since` and `tickets_since`: no earlier than any per-mail
        question will look back (an hour before the earliest moment); `now`: when the
        batch began (a card edit claimed by a sender then is not reused)."""
        wanted = sorted({a.lower() for a in addresses if a})
        found = cls(frozenset(wanted))
        found.automatic_mails = {a: [] for a in wanted}
        found.tickets = {a: [] for a in wanted}
        connection = session.connection()  # no autoflush: nothing of the batch is pending yet
        for chunk in _chunks(wanted):
            found.flagged.update(
                connection.scalars(
                    select(FlaggedAddress.address).where(FlaggedAddress.address.in_(chunk))
                )
            )
            for recipient, created in connection.execute(
                select(OutboxItem.recipient, OutboxItem.created_at).where(
                    OutboxItem.channel == OutboxChannel.MAIL,
                    OutboxItem.recipient.in_(chunk),
                    OutboxItem.kind.in_(sorted(automatic_kinds)),
                    OutboxItem.status != OutboxStatus.CANCELLED,
                    OutboxItem.created_at > mails_since,
                )
            ):
                if recipient is not None:
                    found.automatic_mails[recipient].append(_utc(created))
            for requester, received in connection.execute(
                select(Ticket.requester_email, Ticket.received_at).where(
                    Ticket.requester_email.in_(chunk), Ticket.received_at > tickets_since
                )
            ):
                found.tickets[requester].append(_utc(received))
        found._load_threads(session, sorted(set(thread_ids)), now)
        return found

    def _load_threads(self, session: Session, ids: list[str], now: dt.datetime | None) -> None:
        self.thread_ids = frozenset(ids)
        connection = session.connection()
        for chunk in _chunks(ids):
            for rows, into in (
                (
                    select(Message.message_id, Message.ticket_id).where(
                        Message.message_id.in_(chunk), Message.ticket_id.is_not(None)
                    ),
                    self.stored_ids,
                ),
                (
                    select(OutboxItem.message_id, OutboxItem.ticket_id).where(
                        OutboxItem.message_id.in_(chunk), OutboxItem.ticket_id.is_not(None)
                    ),
                    self.queued_ids,
                ),
            ):
                for message_id, ticket_id in connection.execute(rows):
                    if message_id is not None and ticket_id is not None:
                        into.setdefault(message_id, ticket_id)
        tickets = sorted({*self.stored_ids.values(), *self.queued_ids.values()})
        if now is None or not tickets:
            return
        from lpse_helpdesk.workflow.outbox import TelegramOp  # it imports this module

        self.cards = dict.fromkeys(tickets)
        for start in range(0, len(tickets), _CHUNK):
            for item in session.scalars(
                select(OutboxItem).where(
                    OutboxItem.channel == OutboxChannel.TELEGRAM,
                    OutboxItem.kind == TelegramOp.CARD.value,
                    OutboxItem.ticket_id.in_(tickets[start : start + _CHUNK]),
                    OutboxItem.status == OutboxStatus.PENDING,
                    or_(OutboxItem.lease_until.is_(None), OutboxItem.lease_until <= now),
                )
            ):
                if item.ticket_id is not None and self.cards.get(item.ticket_id) is None:
                    self.cards[item.ticket_id] = item  # the first, as `.first()` per mail

    # --- questions (None: not loaded, ask the database) ----------------------------------

    def is_flagged(self, address: str) -> bool | None:
        address = address.lower()
        if address not in self.addresses:
            return None
        return address in self.flagged

    def automatic_mail_times(self, recipient: str, now: dt.datetime) -> list[dt.datetime] | None:
        """When automatic mails to `recipient` (exactly as stored) were queued in the hour
        before `now` (or after it), not counting cancelled ones."""
        if recipient not in self.addresses:
            return None
        since = now - HOUR
        times = [t for t in self.automatic_mails.get(recipient, []) if t > since]
        times += [
            _utc(item.created_at)
            for item in self.queued.get(recipient, [])
            if item.status is not OutboxStatus.CANCELLED and _utc(item.created_at) > since
        ]
        return times

    def thread_ticket(self, candidates: list[str]) -> tuple[bool, int | None]:
        """(answered, ticket id): the ticket of the first candidate found, stored mails
        first; answered False when a candidate was not loaded (ask the database)."""
        if not self.thread_ids.issuperset(candidates):
            return False, None
        for candidate in candidates:
            if candidate in self.stored_ids:
                return True, self.stored_ids[candidate]
        for candidate in candidates:
            if candidate in self.queued_ids:
                return True, self.queued_ids[candidate]
        return True, None

    def card(self, ticket_id: int) -> tuple[bool, OutboxItem | None]:
        """(answered, the ticket's queued card edit not yet claimed, or None)."""
        if ticket_id not in self.cards:
            return False, None
        return True, self.cards[ticket_id]

    def tickets_between(self, requester: str, since: dt.datetime, until: dt.datetime) -> int | None:
        times = self.tickets.get(requester.lower())
        if times is None:
            return None
        return sum(1 for t in times if since < t <= until)

    # --- what the batch adds -------------------------------------------------------------

    def flag(self, address: str) -> None:
        self.flagged.add(address.lower())

    def unflag(self, address: str) -> None:
        self.flagged.discard(address.lower())

    def queued_mail(self, item: OutboxItem) -> None:
        if item.recipient is not None:
            self.queued[item.recipient].append(item)

    def stored_mail(self, message_id: str, ticket_id: int | None) -> None:
        if ticket_id is not None:
            self.stored_ids.setdefault(message_id, ticket_id)

    def queued_with_id(self, message_id: str | None, ticket_id: int | None) -> None:
        if message_id is not None and ticket_id is not None:
            self.queued_ids.setdefault(message_id, ticket_id)

    def queued_card(self, ticket_id: int, item: OutboxItem) -> None:
        """The card edit the batch just queued for the ticket: the pending one from now on."""
        self.cards[ticket_id] = item

    def opened(self, requester: str, received_at: dt.datetime) -> None:
        times = self.tickets.get(requester.lower())
        if times is not None:
            times.append(_utc(received_at))


def _utc(value: dt.datetime) -> dt.datetime:
    """SQLite gives naive datetimes back from Core queries of some columns: they are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def attach(session: Session, found: BatchLookups) -> None:
    session.info[_KEY] = found


def detach(session: Session) -> None:
    session.info.pop(_KEY, None)


def lookups(session: Session) -> BatchLookups | None:
    found: BatchLookups | None = session.info.get(_KEY)
    return found
