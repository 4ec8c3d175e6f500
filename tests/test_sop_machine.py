"""Every (state, action) pair of the SOP machine, and the properties the SOP demands."""

from __future__ import annotations

import itertools

import pytest

from lpse_helpdesk.domain.model import SopStep
from lpse_helpdesk.sop import machine
from lpse_helpdesk.sop.machine import (
    Action,
    ActionNotAllowed,
    MailKind,
    Recipient,
    SendMail,
    StartClock,
    State,
    StopClock,
    TicketFacts,
)

# The expected table, written out independently of machine.TRANSITIONS: the next state for
# each allowed pair (None = the state does not change).
S, A = State, Action
EXPECTED: dict[tuple[State, Action], State | None] = {
    (S.NEW, A.SET_PRIORITY): S.PRIORITIZED,
    (S.NEW, A.SET_CATEGORY): None,
    (S.NEW, A.ADD_NOTE): None,
    (S.NEW, A.RECEIVE_USER_DATA): None,
    (S.NEW, A.CLOSE): S.CLOSED,
    **{
        (s, A.SET_PRIORITY): None
        for s in (S.PRIORITIZED, S.WAITING_FOR_DATA, S.DATA_RECEIVED, S.IN_ANALYSIS)
    },
    **{
        (s, A.SET_CATEGORY): None
        for s in (
            S.PRIORITIZED,
            S.WAITING_FOR_DATA,
            S.DATA_RECEIVED,
            S.IN_ANALYSIS,
            S.ESCALATED,
            S.LKPP_ANSWERED,
            S.RESOLVED,
        )
    },
    **{(s, A.ADD_NOTE): None for s in State if s is not S.NEW},
    **{
        (s, A.REQUEST_DATA): S.WAITING_FOR_DATA
        for s in (S.PRIORITIZED, S.DATA_RECEIVED, S.IN_ANALYSIS, S.LKPP_ANSWERED)
    },
    (S.WAITING_FOR_DATA, A.REQUEST_DATA): None,
    (S.WAITING_FOR_DATA, A.CONFIRM_PHONE): None,
    (S.WAITING_FOR_DATA, A.RECEIVE_USER_DATA): S.DATA_RECEIVED,
    **{
        (s, A.RECEIVE_USER_DATA): None
        for s in (S.PRIORITIZED, S.DATA_RECEIVED, S.IN_ANALYSIS, S.ESCALATED, S.LKPP_ANSWERED)
    },
    (S.PRIORITIZED, A.START_ANALYSIS): S.IN_ANALYSIS,
    (S.DATA_RECEIVED, A.START_ANALYSIS): S.IN_ANALYSIS,
    **{
        (s, A.RESOLVE): S.RESOLVED
        for s in (
            S.PRIORITIZED,
            S.WAITING_FOR_DATA,
            S.DATA_RECEIVED,
            S.IN_ANALYSIS,
            S.ESCALATED,
            S.LKPP_ANSWERED,
        )
    },
    **{
        (s, A.ESCALATE): S.ESCALATED
        for s in (
            S.PRIORITIZED,
            S.WAITING_FOR_DATA,
            S.DATA_RECEIVED,
            S.IN_ANALYSIS,
            S.LKPP_ANSWERED,
        )
    },
    **{
        (s, A.CLOSE): S.CLOSED
        for s in (
            S.PRIORITIZED,
            S.WAITING_FOR_DATA,
            S.DATA_RECEIVED,
            S.IN_ANALYSIS,
            S.ESCALATED,
            S.LKPP_ANSWERED,
            S.RESOLVED,
        )
    },
    (S.ESCALATED, A.RECEIVE_LKPP_REPLY): S.LKPP_ANSWERED,
    (S.LKPP_ANSWERED, A.RECEIVE_LKPP_REPLY): None,
    (S.RESOLVED, A.REOPEN): S.IN_ANALYSIS,
    (S.RESOLVED, A.RECORD_THANKS): None,
}

ALL_PAIRS = list(itertools.product(State, Action))


def _facts(state: State) -> TicketFacts:
    return TicketFacts(state=state, priority=None if state is S.NEW else "rendah")


def _kwargs(action: Action) -> dict[str, str]:
    return {"priority": "tinggi"} if action is Action.SET_PRIORITY else {}


def test_table_matches_the_expected_table() -> None:
    assert set(machine.TRANSITIONS) == set(EXPECTED)


@pytest.mark.parametrize(("state", "action"), ALL_PAIRS, ids=lambda v: str(v))
def test_every_pair(state: State, action: Action) -> None:
    if (state, action) in EXPECTED:
        outcome = machine.apply(_facts(state), action, **_kwargs(action))
        assert outcome.state == (EXPECTED[state, action] or state)
        assert machine.allowed(state, action)
        assert action in machine.allowed_actions(state)
        # Every change is shown on the card.
        assert machine.UpdateCard() in outcome.effects
    else:
        with pytest.raises(ActionNotAllowed) as caught:
            machine.apply(_facts(state), action, **_kwargs(action))
        error = caught.value
        assert error.state is state and error.action is action
        assert error.message and error.message.endswith(".")
        assert len(error.message) < 120  # short enough for a phone
        assert not machine.allowed(state, action)


def test_every_state_is_reachable_from_new() -> None:
    seen, frontier = {State.NEW}, [State.NEW]
    while frontier:
        state = frontier.pop()
        for (source, _), transition in machine.TRANSITIONS.items():
            target = transition.target
            if source is state and target is not None and target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(State)


def test_closed_is_terminal_but_for_notes() -> None:
    assert machine.allowed_actions(State.CLOSED) == (Action.ADD_NOTE,)


def test_priority_must_come_first() -> None:
    for action in (Action.REQUEST_DATA, Action.RESOLVE, Action.ESCALATE, Action.START_ANALYSIS):
        with pytest.raises(ActionNotAllowed) as caught:
            machine.apply(TicketFacts(State.NEW), action)
        assert "prioritas" in caught.value.message.lower()


def test_set_priority_starts_analysis_and_resolution_clocks() -> None:
    outcome = machine.apply(TicketFacts(State.NEW), Action.SET_PRIORITY, priority="tinggi")
    assert StopClock(SopStep.SET_PRIORITY) in outcome.effects
    assert StartClock(SopStep.ANALYSE) in outcome.effects
    assert StartClock(SopStep.RESOLVE) in outcome.effects
    assert machine.SetStamp(machine.Stamp.PRIORITY_SET) in outcome.effects


def test_set_priority_needs_a_value_and_a_change() -> None:
    with pytest.raises(ValueError, match="needs a priority"):
        machine.apply(TicketFacts(State.NEW), Action.SET_PRIORITY)
    with pytest.raises(ActionNotAllowed, match="set_priority"):
        machine.apply(
            TicketFacts(State.PRIORITIZED, priority="tinggi"),
            Action.SET_PRIORITY,
            priority="tinggi",
        )


def test_request_data_mails_the_user_and_starts_the_phone_clock() -> None:
    outcome = machine.apply(_facts(State.PRIORITIZED), Action.REQUEST_DATA)
    assert outcome.mails() == (SendMail(MailKind.DATA_REQUEST, Recipient.USER),)
    assert StartClock(SopStep.REQUEST_DATA) in outcome.effects
    assert machine.PauseClock(SopStep.ANALYSE) in outcome.effects
    assert machine.PauseClock(SopStep.RESOLVE) in outcome.effects


def test_phone_confirmation_is_recorded_once() -> None:
    outcome = machine.apply(_facts(State.WAITING_FOR_DATA), Action.CONFIRM_PHONE)
    assert StopClock(SopStep.REQUEST_DATA) in outcome.effects
    assert outcome.state is State.WAITING_FOR_DATA
    confirmed = TicketFacts(State.WAITING_FOR_DATA, priority="rendah", phone_confirmed=True)
    with pytest.raises(ActionNotAllowed) as caught:
        machine.apply(confirmed, Action.CONFIRM_PHONE)
    assert caught.value.message == "Konfirmasi telepon sudah dicatat."


def test_user_data_resumes_the_clocks() -> None:
    outcome = machine.apply(_facts(State.WAITING_FOR_DATA), Action.RECEIVE_USER_DATA)
    assert machine.ResumeClock(SopStep.ANALYSE) in outcome.effects
    assert machine.PostNotice(machine.Notice.USER_DATA) in outcome.effects


def test_resolve_sends_the_solution_and_times_the_reply() -> None:
    outcome = machine.apply(_facts(State.IN_ANALYSIS), Action.RESOLVE)
    assert outcome.mails() == (
        SendMail(MailKind.SOLUTION, Recipient.USER, completes=SopStep.REPLY_AFTER_SOLVED),
    )
    assert StartClock(SopStep.REPLY_AFTER_SOLVED) in outcome.effects
    assert StopClock(SopStep.RESOLVE) in outcome.effects


def test_escalate_forwards_to_lkpp_and_tells_the_user() -> None:
    outcome = machine.apply(_facts(State.IN_ANALYSIS), Action.ESCALATE)
    kinds = {(mail.kind, mail.to) for mail in outcome.mails()}
    assert kinds == {
        (MailKind.LKPP_FORWARD, Recipient.LKPP),
        (MailKind.ESCALATION_NOTICE, Recipient.USER),
    }
    assert StartClock(SopStep.ESCALATE_AND_NOTIFY) in outcome.effects


def test_reopen_restarts_the_work() -> None:
    outcome = machine.apply(_facts(State.RESOLVED), Action.REOPEN)
    assert outcome.state is State.IN_ANALYSIS
    assert StartClock(SopStep.ANALYSE) in outcome.effects


@pytest.mark.parametrize(
    ("state", "from_lkpp", "expected"),
    [
        (State.WAITING_FOR_DATA, False, Action.RECEIVE_USER_DATA),
        (State.ESCALATED, True, Action.RECEIVE_LKPP_REPLY),
        (State.LKPP_ANSWERED, True, Action.RECEIVE_LKPP_REPLY),
        (State.RESOLVED, False, Action.REOPEN),
        (State.IN_ANALYSIS, False, Action.RECEIVE_USER_DATA),
        (State.CLOSED, False, None),
        (State.IN_ANALYSIS, True, Action.RECEIVE_USER_DATA),
    ],
)
def test_mail_action(state: State, from_lkpp: bool, expected: Action | None) -> None:
    assert machine.mail_action(state, from_lkpp=from_lkpp) is expected


def test_thanks_after_the_solution_is_recorded_without_reopening() -> None:
    assert machine.mail_action(State.RESOLVED, from_lkpp=False, thanks=True) is (
        Action.RECORD_THANKS
    )
    assert machine.mail_action(State.IN_ANALYSIS, from_lkpp=False, thanks=True) is (
        Action.RECEIVE_USER_DATA
    )
    outcome = machine.apply(_facts(State.RESOLVED), Action.RECORD_THANKS)
    assert outcome.state is State.RESOLVED
    assert outcome.effects == (machine.PostNotice(machine.Notice.THANKS), machine.UpdateCard())


def test_the_relay_after_lkpp_needs_no_text() -> None:
    assert not machine.needs_text(State.LKPP_ANSWERED, Action.RESOLVE)
    assert machine.needs_text(State.IN_ANALYSIS, Action.RESOLVE)
    assert machine.needs_text(State.LKPP_ANSWERED, Action.REQUEST_DATA)
    assert not machine.needs_text(State.RESOLVED, Action.RECORD_THANKS)


def test_labels_cover_every_state_and_action() -> None:
    assert set(machine.STATE_LABELS) == set(State)
    assert set(machine.ACTION_LABELS) == set(Action)
    assert set(Action) == machine.STAFF_ACTIONS | machine.MAIL_ACTIONS
    labels = machine.ACTION_LABELS
    for word, action in [
        ("Minta Data", Action.REQUEST_DATA),
        ("Telepon", Action.CONFIRM_PHONE),
        ("Selesai", Action.RESOLVE),
        ("Eskalasi LKPP", Action.ESCALATE),
    ]:
        assert word in labels[action]


def test_solution_after_lkpp_relays_the_answer() -> None:
    outcome = machine.apply(_facts(State.LKPP_ANSWERED), Action.RESOLVE)
    assert outcome.state is State.RESOLVED
    assert outcome.mails() == (
        SendMail(MailKind.LKPP_ANSWER_RELAY, Recipient.USER, completes=SopStep.REPLY_AFTER_SOLVED),
    )


def test_waiting_for_lkpp_pauses_the_work_clocks() -> None:
    escalated = machine.apply(_facts(State.IN_ANALYSIS), Action.ESCALATE)
    assert machine.PauseClock(SopStep.RESOLVE) in escalated.effects
    assert StopClock(SopStep.RESOLVE) not in escalated.effects
    answered = machine.apply(_facts(State.ESCALATED), Action.RECEIVE_LKPP_REPLY)
    assert machine.ResumeClock(SopStep.RESOLVE) in answered.effects
    solved = machine.apply(_facts(State.LKPP_ANSWERED), Action.RESOLVE)
    assert StopClock(SopStep.RESOLVE) in solved.effects


def test_user_data_ends_the_request_step() -> None:
    outcome = machine.apply(_facts(State.WAITING_FOR_DATA), Action.RECEIVE_USER_DATA)
    assert StopClock(SopStep.REQUEST_DATA) in outcome.effects


def test_the_same_category_again_is_refused() -> None:
    facts = TicketFacts(State.PRIORITIZED, priority="rendah", category="SANGGAH")
    with pytest.raises(ActionNotAllowed) as caught:
        machine.apply(facts, Action.SET_CATEGORY, category="SANGGAH")
    assert caught.value.message == "Kategori tersebut sudah dipilih."
    assert machine.apply(facts, Action.SET_CATEGORY, category="SIRUP").state is State.PRIORITIZED


def test_the_same_priority_again_is_refused_by_name() -> None:
    facts = TicketFacts(State.PRIORITIZED, priority="tinggi")
    with pytest.raises(ActionNotAllowed) as caught:
        machine.apply(facts, Action.SET_PRIORITY, priority="tinggi")
    assert caught.value.message == "Prioritas sudah Tinggi."
