"""The SOP Penanganan Permasalahan Pengguna SPSE melalui E-mail as a pure state machine.

The transition table below is the whole procedure: for each state, the actions staff (or the
mail intake) may take, the state that follows and the effects the transition causes. Nothing
here performs I/O; the storage layer applies the effects (outbox rows, SLA clocks, timestamps)
in the same transaction as the state change.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from lpse_helpdesk.domain.model import SopStep


class State(enum.StrEnum):
    NEW = "new"  # step 1: the mail arrived
    PRIORITIZED = "prioritized"  # step 2 done; step 3 (is more data needed?) pending
    WAITING_FOR_DATA = "waiting_for_data"  # step 4 done: data requested (phone on the ticket)
    DATA_RECEIVED = "data_received"  # steps 5-6: the user replied with data
    IN_ANALYSIS = "in_analysis"  # step 7
    RESOLVED = "resolved"  # step 9: the solution was sent
    ESCALATED = "escalated"  # step 10: forwarded to Helpdesk LKPP
    LKPP_ANSWERED = "lkpp_answered"  # LKPP replied to the escalation
    CLOSED = "closed"


class Action(enum.StrEnum):
    SET_PRIORITY = "set_priority"
    SET_CATEGORY = "set_category"
    REQUEST_DATA = "request_data"
    CONFIRM_PHONE = "confirm_phone"
    RECEIVE_USER_DATA = "receive_user_data"
    START_ANALYSIS = "start_analysis"
    ADD_NOTE = "add_note"
    RESOLVE = "resolve"
    ESCALATE = "escalate"
    RECEIVE_LKPP_REPLY = "receive_lkpp_reply"
    REOPEN = "reopen"
    RECORD_THANKS = "record_thanks"  # the user only thanked or confirmed after the solution
    CLOSE = "close"


STATE_LABELS: Mapping[State, str] = {
    State.NEW: "Baru",
    State.PRIORITIZED: "Prioritas ditetapkan",
    State.WAITING_FOR_DATA: "Menunggu data pengguna",
    State.DATA_RECEIVED: "Data diterima",
    State.IN_ANALYSIS: "Dianalisis",
    State.RESOLVED: "Selesai",
    State.ESCALATED: "Dieskalasi ke LKPP",
    State.LKPP_ANSWERED: "Dijawab LKPP",
    State.CLOSED: "Ditutup",
}

ACTION_LABELS: Mapping[Action, str] = {
    Action.SET_PRIORITY: "Tetapkan prioritas",
    Action.SET_CATEGORY: "Kategori",
    Action.REQUEST_DATA: "Minta Data",
    Action.CONFIRM_PHONE: "Telepon",
    Action.RECEIVE_USER_DATA: "Data pengguna diterima",
    Action.START_ANALYSIS: "Mulai Analisis",
    Action.ADD_NOTE: "Catatan",
    Action.RESOLVE: "Selesai",
    Action.ESCALATE: "Eskalasi LKPP",
    Action.RECEIVE_LKPP_REPLY: "Jawaban LKPP diterima",
    Action.REOPEN: "Buka kembali",
    Action.RECORD_THANKS: "Terima kasih dicatat",
    Action.CLOSE: "Tutup",
}

#: Actions staff take from Telegram; the others come from the mail intake.
STAFF_ACTIONS: frozenset[Action] = frozenset(
    {
        Action.SET_PRIORITY,
        Action.SET_CATEGORY,
        Action.REQUEST_DATA,
        Action.CONFIRM_PHONE,
        Action.START_ANALYSIS,
        Action.ADD_NOTE,
        Action.RESOLVE,
        Action.ESCALATE,
        Action.CLOSE,
    }
)
MAIL_ACTIONS: frozenset[Action] = frozenset(
    {Action.RECEIVE_USER_DATA, Action.RECEIVE_LKPP_REPLY, Action.REOPEN, Action.RECORD_THANKS}
)
#: Actions whose staff text (the e-mail body or the note) is required.
TEXT_ACTIONS: frozenset[Action] = frozenset(
    {Action.REQUEST_DATA, Action.RESOLVE, Action.ESCALATE, Action.ADD_NOTE}
)
OPEN_STATES: frozenset[State] = frozenset(set(State) - {State.RESOLVED, State.CLOSED})


class MailKind(enum.StrEnum):
    """The e-mails the SOP calls for; the outbound bridge renders each from a template."""

    ACKNOWLEDGEMENT = "acknowledgement"  # to the user: ticket received, what happens next
    DATA_REQUEST = "data_request"  # step 4, to the user
    SOLUTION = "solution"  # step 9, to the user
    ESCALATION_NOTICE = "escalation_notice"  # step 10, to the user
    LKPP_FORWARD = "lkpp_forward"  # step 10, to Helpdesk LKPP
    LKPP_ANSWER_RELAY = "lkpp_answer_relay"  # LKPP's answer relayed to the user
    ATTACHMENT_TOO_LARGE = "attachment_too_large"
    UNREADABLE_MAIL = "unreadable_mail"


class Recipient(enum.StrEnum):
    USER = "user"
    LKPP = "lkpp"


class Notice(enum.StrEnum):
    """Short messages posted in reply to a ticket's card."""

    USER_MAIL = "user_mail"
    USER_DATA = "user_data"
    LKPP_REPLY = "lkpp_reply"
    REOPENED = "reopened"
    THANKS = "thanks"  # recorded after the solution; offers staff to reopen


class Stamp(enum.StrEnum):
    """The ticket's timestamp for each SOP step (a column each in storage)."""

    PRIORITY_SET = "priority_set_at"
    DATA_REQUESTED = "data_requested_at"
    PHONE_CONFIRMED = "phone_confirmed_at"
    DATA_RECEIVED = "data_received_at"
    ANALYSIS_STARTED = "analysis_started_at"
    RESOLVED = "resolved_at"
    ESCALATED = "escalated_at"
    LKPP_ANSWERED = "lkpp_answered_at"
    REOPENED = "reopened_at"
    CLOSED = "closed_at"


# --- Effects: what a transition causes, for the storage layer to apply ---------------------


@dataclass(frozen=True)
class SendMail:
    kind: MailKind
    to: Recipient
    #: The SLA step that ends when this mail has been delivered (steps 9 and 10).
    completes: SopStep | None = None


@dataclass(frozen=True)
class StartClock:
    step: SopStep


@dataclass(frozen=True)
class StopClock:
    step: SopStep


@dataclass(frozen=True)
class PauseClock:
    step: SopStep


@dataclass(frozen=True)
class ResumeClock:
    step: SopStep


@dataclass(frozen=True)
class RestartClock:
    """The step's deadline changes (a new priority means a new resolution time)."""

    step: SopStep


@dataclass(frozen=True)
class SetStamp:
    stamp: Stamp


@dataclass(frozen=True)
class UpdateCard:
    pass


@dataclass(frozen=True)
class PostNotice:
    notice: Notice


Effect = (
    SendMail
    | StartClock
    | StopClock
    | PauseClock
    | ResumeClock
    | RestartClock
    | SetStamp
    | UpdateCard
    | PostNotice
)


@dataclass(frozen=True)
class Transition:
    target: State | None  # None: stay in the current state
    effects: tuple[Effect, ...] = ()


# --- Errors ---------------------------------------------------------------------------------


class ActionNotAllowed(Exception):
    """An action is not allowed now; `message` is a short Indonesian text for staff."""

    def __init__(self, state: State, action: Action, message: str) -> None:
        super().__init__(f"{action.value} is not allowed in state {state.value}")
        self.state = state
        self.action = action
        self.message = message


# --- The table ------------------------------------------------------------------------------

_CARD = UpdateCard()
_ANALYSIS_CLOCKS = (SopStep.ANALYSE, SopStep.RESOLVE)


def _pause_work() -> tuple[Effect, ...]:
    return tuple(PauseClock(step) for step in _ANALYSIS_CLOCKS)


def _resume_work() -> tuple[Effect, ...]:
    return tuple(ResumeClock(step) for step in _ANALYSIS_CLOCKS)


def _stop_work() -> tuple[Effect, ...]:
    return (*(StopClock(step) for step in _ANALYSIS_CLOCKS), StopClock(SopStep.REQUEST_DATA))


#: Closing ends every clock, including a reply or escalation mail still on its way.
_STOP_ALL = (
    *_stop_work(),
    StopClock(SopStep.REPLY_AFTER_SOLVED),
    StopClock(SopStep.ESCALATE_AND_NOTIFY),
)


_SET_CATEGORY = Transition(None, (_CARD,))
_ADD_NOTE = Transition(None, (_CARD,))
_CHANGE_PRIORITY = Transition(
    None, (SetStamp(Stamp.PRIORITY_SET), RestartClock(SopStep.RESOLVE), _CARD)
)
_REQUEST_DATA = Transition(
    State.WAITING_FOR_DATA,
    (
        SendMail(MailKind.DATA_REQUEST, Recipient.USER),
        SetStamp(Stamp.DATA_REQUESTED),
        StartClock(SopStep.REQUEST_DATA),
        *_pause_work(),
        _CARD,
    ),
)
_RESOLVE = Transition(
    State.RESOLVED,
    (
        SendMail(MailKind.SOLUTION, Recipient.USER, completes=SopStep.REPLY_AFTER_SOLVED),
        SetStamp(Stamp.RESOLVED),
        *_stop_work(),
        StartClock(SopStep.REPLY_AFTER_SOLVED),
        _CARD,
    ),
)
_ESCALATE = Transition(
    State.ESCALATED,
    (
        SendMail(MailKind.LKPP_FORWARD, Recipient.LKPP),
        SendMail(MailKind.ESCALATION_NOTICE, Recipient.USER, completes=SopStep.ESCALATE_AND_NOTIFY),
        SetStamp(Stamp.ESCALATED),
        StopClock(SopStep.REQUEST_DATA),
        # Waiting for LKPP pauses the LPSE's clocks; LKPP's answer resumes them.
        *_pause_work(),
        StartClock(SopStep.ESCALATE_AND_NOTIFY),
        _CARD,
    ),
)
_RELAY_LKPP_ANSWER = Transition(
    State.RESOLVED,
    (
        SendMail(MailKind.LKPP_ANSWER_RELAY, Recipient.USER, completes=SopStep.REPLY_AFTER_SOLVED),
        SetStamp(Stamp.RESOLVED),
        *_stop_work(),
        StartClock(SopStep.REPLY_AFTER_SOLVED),
        _CARD,
    ),
)
_START_ANALYSIS = Transition(State.IN_ANALYSIS, (SetStamp(Stamp.ANALYSIS_STARTED), _CARD))
_CLOSE = Transition(State.CLOSED, (SetStamp(Stamp.CLOSED), *_STOP_ALL, _CARD))
_MORE_USER_DATA = Transition(
    None, (SetStamp(Stamp.DATA_RECEIVED), PostNotice(Notice.USER_DATA), _CARD)
)

#: The transition table: (state, action) -> transition. A pair that is absent is not allowed.
TRANSITIONS: Mapping[tuple[State, Action], Transition] = {
    # Step 2: the mail is studied and given a priority.
    (State.NEW, Action.SET_PRIORITY): Transition(
        State.PRIORITIZED,
        (
            SetStamp(Stamp.PRIORITY_SET),
            StopClock(SopStep.SET_PRIORITY),
            StartClock(SopStep.ANALYSE),
            StartClock(SopStep.RESOLVE),
            _CARD,
        ),
    ),
    (State.NEW, Action.SET_CATEGORY): _SET_CATEGORY,
    (State.NEW, Action.ADD_NOTE): _ADD_NOTE,
    (State.NEW, Action.RECEIVE_USER_DATA): _MORE_USER_DATA,
    (State.NEW, Action.CLOSE): Transition(
        State.CLOSED, (SetStamp(Stamp.CLOSED), StopClock(SopStep.SET_PRIORITY), _CARD)
    ),
    # Step 3: is more data needed? Then step 4, or on to the analysis (step 7).
    (State.PRIORITIZED, Action.SET_PRIORITY): _CHANGE_PRIORITY,
    (State.PRIORITIZED, Action.SET_CATEGORY): _SET_CATEGORY,
    (State.PRIORITIZED, Action.REQUEST_DATA): _REQUEST_DATA,
    (State.PRIORITIZED, Action.START_ANALYSIS): _START_ANALYSIS,
    (State.PRIORITIZED, Action.ADD_NOTE): _ADD_NOTE,
    (State.PRIORITIZED, Action.RECEIVE_USER_DATA): _MORE_USER_DATA,
    (State.PRIORITIZED, Action.RESOLVE): _RESOLVE,
    (State.PRIORITIZED, Action.ESCALATE): _ESCALATE,
    (State.PRIORITIZED, Action.CLOSE): _CLOSE,
    # Step 4: the request went out; the phone call is recorded; steps 5-6: the user replies.
    (State.WAITING_FOR_DATA, Action.SET_PRIORITY): _CHANGE_PRIORITY,
    (State.WAITING_FOR_DATA, Action.SET_CATEGORY): _SET_CATEGORY,
    (State.WAITING_FOR_DATA, Action.CONFIRM_PHONE): Transition(
        None, (SetStamp(Stamp.PHONE_CONFIRMED), StopClock(SopStep.REQUEST_DATA), _CARD)
    ),
    (State.WAITING_FOR_DATA, Action.REQUEST_DATA): Transition(
        None,
        (SendMail(MailKind.DATA_REQUEST, Recipient.USER), SetStamp(Stamp.DATA_REQUESTED), _CARD),
    ),
    (State.WAITING_FOR_DATA, Action.RECEIVE_USER_DATA): Transition(
        State.DATA_RECEIVED,
        (
            SetStamp(Stamp.DATA_RECEIVED),
            StopClock(SopStep.REQUEST_DATA),  # in case the phone call was never recorded
            *_resume_work(),
            PostNotice(Notice.USER_DATA),
            _CARD,
        ),
    ),
    (State.WAITING_FOR_DATA, Action.ADD_NOTE): _ADD_NOTE,
    (State.WAITING_FOR_DATA, Action.RESOLVE): _RESOLVE,
    (State.WAITING_FOR_DATA, Action.ESCALATE): _ESCALATE,
    (State.WAITING_FOR_DATA, Action.CLOSE): _CLOSE,
    # Step 7: analysis, with the data at hand.
    (State.DATA_RECEIVED, Action.SET_PRIORITY): _CHANGE_PRIORITY,
    (State.DATA_RECEIVED, Action.SET_CATEGORY): _SET_CATEGORY,
    (State.DATA_RECEIVED, Action.REQUEST_DATA): _REQUEST_DATA,
    (State.DATA_RECEIVED, Action.RECEIVE_USER_DATA): _MORE_USER_DATA,
    (State.DATA_RECEIVED, Action.START_ANALYSIS): _START_ANALYSIS,
    (State.DATA_RECEIVED, Action.ADD_NOTE): _ADD_NOTE,
    (State.DATA_RECEIVED, Action.RESOLVE): _RESOLVE,
    (State.DATA_RECEIVED, Action.ESCALATE): _ESCALATE,
    (State.DATA_RECEIVED, Action.CLOSE): _CLOSE,
    (State.IN_ANALYSIS, Action.SET_PRIORITY): _CHANGE_PRIORITY,
    (State.IN_ANALYSIS, Action.SET_CATEGORY): _SET_CATEGORY,
    (State.IN_ANALYSIS, Action.REQUEST_DATA): _REQUEST_DATA,
    (State.IN_ANALYSIS, Action.RECEIVE_USER_DATA): _MORE_USER_DATA,
    (State.IN_ANALYSIS, Action.ADD_NOTE): _ADD_NOTE,
    # Steps 8-10: solved (reply within 10 minutes) or escalated to Helpdesk LKPP.
    (State.IN_ANALYSIS, Action.RESOLVE): _RESOLVE,
    (State.IN_ANALYSIS, Action.ESCALATE): _ESCALATE,
    (State.IN_ANALYSIS, Action.CLOSE): _CLOSE,
    (State.ESCALATED, Action.SET_CATEGORY): _SET_CATEGORY,
    (State.ESCALATED, Action.ADD_NOTE): _ADD_NOTE,
    (State.ESCALATED, Action.RECEIVE_USER_DATA): Transition(
        None, (PostNotice(Notice.USER_MAIL), _CARD)
    ),
    (State.ESCALATED, Action.RECEIVE_LKPP_REPLY): Transition(
        State.LKPP_ANSWERED,
        (SetStamp(Stamp.LKPP_ANSWERED), *_resume_work(), PostNotice(Notice.LKPP_REPLY), _CARD),
    ),
    (State.ESCALATED, Action.RESOLVE): _RESOLVE,
    (State.ESCALATED, Action.CLOSE): _CLOSE,
    (State.LKPP_ANSWERED, Action.SET_CATEGORY): _SET_CATEGORY,
    (State.LKPP_ANSWERED, Action.ADD_NOTE): _ADD_NOTE,
    (State.LKPP_ANSWERED, Action.RECEIVE_USER_DATA): Transition(
        None, (PostNotice(Notice.USER_MAIL), _CARD)
    ),
    (State.LKPP_ANSWERED, Action.RECEIVE_LKPP_REPLY): Transition(
        None, (SetStamp(Stamp.LKPP_ANSWERED), PostNotice(Notice.LKPP_REPLY), _CARD)
    ),
    (State.LKPP_ANSWERED, Action.REQUEST_DATA): _REQUEST_DATA,
    # The solution after LKPP's answer relays that answer, with the staff's own words.
    (State.LKPP_ANSWERED, Action.RESOLVE): _RELAY_LKPP_ANSWER,
    (State.LKPP_ANSWERED, Action.ESCALATE): _ESCALATE,
    (State.LKPP_ANSWERED, Action.CLOSE): _CLOSE,
    # After the solution: the user writes again (reopen), or the ticket is closed.
    (State.RESOLVED, Action.ADD_NOTE): _ADD_NOTE,
    (State.RESOLVED, Action.SET_CATEGORY): _SET_CATEGORY,
    (State.RESOLVED, Action.REOPEN): Transition(
        State.IN_ANALYSIS,
        (
            SetStamp(Stamp.REOPENED),
            StartClock(SopStep.ANALYSE),
            StartClock(SopStep.RESOLVE),
            PostNotice(Notice.REOPENED),
            _CARD,
        ),
    ),
    # Thanks or a confirmation is recorded: no reopen, no clock touched (staff may reopen).
    (State.RESOLVED, Action.RECORD_THANKS): Transition(None, (PostNotice(Notice.THANKS), _CARD)),
    (State.RESOLVED, Action.CLOSE): Transition(
        State.CLOSED, (SetStamp(Stamp.CLOSED), *_STOP_ALL, _CARD)
    ),
    (State.CLOSED, Action.ADD_NOTE): _ADD_NOTE,
}

#: Why an action is refused in a state, in the words staff read on the phone.
_REFUSALS: Mapping[Action, Mapping[frozenset[State], str]] = {
    Action.SET_PRIORITY: {
        frozenset({State.ESCALATED, State.LKPP_ANSWERED}): (
            "Tiket sudah dieskalasi ke LKPP; prioritas tidak dapat diubah lagi."
        ),
    },
    Action.REQUEST_DATA: {
        frozenset({State.NEW}): "Tetapkan prioritas terlebih dahulu, lalu minta data.",
        frozenset({State.ESCALATED}): "Tiket sedang ditangani LKPP; tunggu jawaban LKPP.",
    },
    Action.CONFIRM_PHONE: {
        frozenset(set(State) - {State.WAITING_FOR_DATA}): (
            "Konfirmasi telepon baru dapat dicatat setelah permintaan data dikirim."
        ),
    },
    Action.START_ANALYSIS: {
        frozenset({State.NEW}): "Tetapkan prioritas terlebih dahulu.",
        frozenset({State.WAITING_FOR_DATA}): "Tiket masih menunggu data dari pengguna.",
        frozenset({State.IN_ANALYSIS}): "Tiket sudah dalam analisis.",
    },
    Action.RESOLVE: {
        frozenset({State.NEW}): "Tetapkan prioritas terlebih dahulu.",
    },
    Action.ESCALATE: {
        frozenset({State.NEW}): "Tetapkan prioritas terlebih dahulu.",
        frozenset({State.ESCALATED}): "Tiket sudah dieskalasi ke LKPP.",
    },
    Action.RECEIVE_LKPP_REPLY: {
        frozenset(set(State) - {State.ESCALATED, State.LKPP_ANSWERED}): (
            "Tiket ini tidak sedang dieskalasi ke LKPP."
        ),
    },
    Action.REOPEN: {
        frozenset(set(State) - {State.RESOLVED}): "Hanya tiket yang selesai dapat dibuka kembali.",
    },
}
_REFUSAL_BY_STATE: Mapping[State, str] = {
    State.RESOLVED: "Tiket sudah selesai.",
    State.CLOSED: "Tiket sudah ditutup.",
}


def refusal_message(state: State, action: Action) -> str:
    """The Indonesian sentence that explains why `action` is not allowed in `state`."""
    for states, message in _REFUSALS.get(action, {}).items():
        if state in states:
            return message
    if state in _REFUSAL_BY_STATE:
        return _REFUSAL_BY_STATE[state]
    return (
        f"Aksi \u201c{ACTION_LABELS[action]}\u201d tidak dapat dilakukan "
        f"saat tiket berstatus {STATE_LABELS[state]}."
    )


@dataclass(frozen=True)
class TicketFacts:
    """What the guards need to know about a ticket besides its state."""

    state: State
    priority: str | None = None
    phone_confirmed: bool = False
    category: str | None = None


@dataclass(frozen=True)
class Outcome:
    state: State
    effects: tuple[Effect, ...] = field(default_factory=tuple)

    def mails(self) -> tuple[SendMail, ...]:
        return tuple(e for e in self.effects if isinstance(e, SendMail))


def allowed(state: State, action: Action) -> bool:
    return (state, action) in TRANSITIONS


def allowed_actions(state: State) -> tuple[Action, ...]:
    """The actions allowed in `state`, in the order of the Action enum."""
    return tuple(action for action in Action if (state, action) in TRANSITIONS)


def apply(
    facts: TicketFacts,
    action: Action,
    *,
    priority: str | None = None,
    category: str | None = None,
) -> Outcome:
    """Decide what `action` does to a ticket; raise ActionNotAllowed when it may not."""
    transition = TRANSITIONS.get((facts.state, action))
    if transition is None:
        raise ActionNotAllowed(facts.state, action, refusal_message(facts.state, action))
    if action is Action.SET_PRIORITY:
        if priority is None:
            raise ValueError("SET_PRIORITY needs a priority")
        if priority == facts.priority:
            label = priority.replace("_", " ").title()
            raise ActionNotAllowed(facts.state, action, f"Prioritas sudah {label}.")
    if action is Action.SET_CATEGORY and category is not None and category == facts.category:
        raise ActionNotAllowed(facts.state, action, "Kategori tersebut sudah dipilih.")
    if action is Action.CONFIRM_PHONE and facts.phone_confirmed:
        raise ActionNotAllowed(facts.state, action, "Konfirmasi telepon sudah dicatat.")
    return Outcome(transition.target or facts.state, transition.effects)


def needs_text(state: State, action: Action) -> bool:
    """Whether staff must type a text for `action`: the solution after LKPP's answer may
    relay that answer alone (the relay mail carries it); every other text action needs one."""
    if state is State.LKPP_ANSWERED and action is Action.RESOLVE:
        return False
    return action in TEXT_ACTIONS and action in STAFF_ACTIONS


def mail_action(state: State, *, from_lkpp: bool, thanks: bool = False) -> Action | None:
    """The action a new mail on an existing ticket causes, or None when it only joins it.

    A reply from Helpdesk LKPP to an escalated ticket is LKPP's answer; a user's mail while
    data is awaited is the data; a user's mail after the solution reopens the ticket (the
    intake decides beforehand whether the reopen window has passed), unless it only thanks
    or confirms (`thanks`, judged by the intake from the text): that is recorded.
    """
    if from_lkpp and (state, Action.RECEIVE_LKPP_REPLY) in TRANSITIONS:
        return Action.RECEIVE_LKPP_REPLY
    if state is State.RESOLVED:
        return Action.RECORD_THANKS if thanks and not from_lkpp else Action.REOPEN
    if (state, Action.RECEIVE_USER_DATA) in TRANSITIONS:
        return Action.RECEIVE_USER_DATA
    return None
