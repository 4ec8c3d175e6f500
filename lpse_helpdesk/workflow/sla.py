"""Apply the SOP machine's clock effects to the stored SLA clocks (business time)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from lpse_helpdesk.domain.model import DomainConfig, SopStep
from lpse_helpdesk.sop.machine import PauseClock, RestartClock, ResumeClock, StartClock, StopClock
from lpse_helpdesk.storage.models import SlaClock, Ticket
from lpse_helpdesk.timekeeping.calendar import BusinessCalendar
from lpse_helpdesk.workflow.waker import SLA_TOPIC, wake_after_commit

ClockEffect = StartClock | StopClock | PauseClock | ResumeClock | RestartClock


class SlaKeeper:
    def __init__(self, domain: DomainConfig, calendar: BusinessCalendar) -> None:
        self.domain = domain
        self.calendar = calendar

    def running(self, session: Session, ticket_id: int, step: SopStep) -> SlaClock | None:
        return session.scalars(
            select(SlaClock)
            .where(
                SlaClock.ticket_id == ticket_id,
                SlaClock.step == step,
                SlaClock.stopped_at.is_(None),
            )
            .order_by(SlaClock.id.desc())
        ).first()

    def start(
        self,
        session: Session,
        ticket: Ticket,
        step: SopStep,
        now: dt.datetime,
        *,
        new_ticket: bool = False,
    ) -> None:
        duration = self.domain.step_time(step, ticket.priority)
        if duration is None:
            return  # the step's clock is switched off, or no priority yet
        previous = None if new_ticket else self.running(session, ticket.id, step)
        if previous is not None:
            self.stop(previous, now)
        deadline = self.calendar.deadline(now, duration)
        budget = self.calendar.elapsed_minutes(now, deadline)
        wake_after_commit(session, SLA_TOPIC)  # the scheduler sleeps until the next deadline
        session.add(
            SlaClock(
                ticket_id=ticket.id,
                step=step,
                started_at=now,
                resumed_at=now,
                budget_minutes=budget,
                deadline_at=deadline,
                used_minutes=0.0,
            )
        )

    def used(self, clock: SlaClock, now: dt.datetime) -> float:
        """Business minutes spent so far."""
        if clock.paused_at is not None or clock.resumed_at is None:
            return clock.used_minutes
        return clock.used_minutes + self.calendar.elapsed_minutes(clock.resumed_at, now)

    def stop(self, clock: SlaClock, now: dt.datetime, *, missed: bool = False) -> None:
        """Stop the clock; `missed` when the step ended without being done (mail failed)."""
        minutes = self.used(clock, now)
        _deadline_changes(clock)
        clock.stopped_at = now
        clock.business_minutes = round(minutes, 2)
        clock.met = not missed and minutes <= clock.budget_minutes + 1e-6
        clock.paused_at = None

    def pause(self, clock: SlaClock, now: dt.datetime) -> None:
        if clock.paused_at is None:
            _deadline_changes(clock)
            clock.used_minutes = self.used(clock, now)
            clock.paused_at = now
            clock.deadline_at = None

    def resume(self, clock: SlaClock, now: dt.datetime) -> None:
        if clock.paused_at is not None:
            _deadline_changes(clock)
            clock.paused_at = None
            clock.resumed_at = now
            left = max(clock.budget_minutes - clock.used_minutes, 0.0)
            clock.deadline_at = self.calendar.add_minutes(now, left)

    def restart(self, session: Session, ticket: Ticket, step: SopStep, now: dt.datetime) -> None:
        """A new budget from the same start (e.g. the priority changed); time spent counts."""
        clock = self.running(session, ticket.id, step)
        duration = self.domain.step_time(step, ticket.priority)
        if clock is None or duration is None:
            return
        deadline = self.calendar.deadline(clock.started_at, duration)
        _deadline_changes(clock)
        clock.budget_minutes = self.calendar.elapsed_minutes(clock.started_at, deadline)
        # A new budget deserves its own reminder and breach alert.
        clock.reminded_at = None
        clock.breach_alerted_at = None
        if clock.paused_at is None:
            used = self.used(clock, now)
            clock.used_minutes, clock.resumed_at = used, now
            clock.deadline_at = self.calendar.add_minutes(
                now, max(clock.budget_minutes - used, 0.0)
            )

    def apply(
        self, session: Session, ticket: Ticket, effect: ClockEffect, now: dt.datetime
    ) -> None:
        if isinstance(effect, StartClock):
            self.start(session, ticket, effect.step, now)
        elif isinstance(effect, RestartClock):
            self.restart(session, ticket, effect.step, now)
        else:
            clock = self.running(session, ticket.id, effect.step)
            if clock is None:
                return
            if isinstance(effect, StopClock):
                self.stop(clock, now)
            elif isinstance(effect, PauseClock):
                self.pause(clock, now)
            else:
                self.resume(clock, now)

    def complete(
        self,
        session: Session,
        ticket_id: int,
        step: SopStep,
        now: dt.datetime,
        *,
        missed: bool = False,
    ) -> None:
        """The mail that ends a step (steps 9 and 10) was delivered, or will never be."""
        clock = self.running(session, ticket_id, step)
        if clock is not None:
            self.stop(clock, now, missed=missed)


def _deadline_changes(clock: SlaClock) -> None:
    """The SLA scheduler sleeps until the next deadline: wake it once this commits."""
    session = object_session(clock)
    if session is not None:
        wake_after_commit(session, SLA_TOPIC)
