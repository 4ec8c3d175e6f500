"""The bot's own membership in the helpdesk group: what it may do, and what to tell people.

From a `my_chat_member` update or a getChatMember answer. When the bot cannot write to the
group (removed, restricted), group messages wait (never fail) and supervisors are told in
their private chats what to do; once it can write again it says so and the queue goes out
in order. Lost rights that do not stop messages (pinning, topics) are reported the same way.
"""

from __future__ import annotations

from telegram import ChatMember, ChatMemberAdministrator, ChatMemberOwner, ChatMemberRestricted

from lpse_helpdesk.bot.group import Membership


def membership_of(member: ChatMember) -> Membership:
    status = str(member.status)
    if isinstance(member, ChatMemberOwner):
        return Membership(status, True, True, True)
    if isinstance(member, ChatMemberAdministrator):
        return Membership(
            status,
            can_send=True,
            can_pin=bool(member.can_pin_messages),
            can_manage_topics=bool(member.can_manage_topics),
        )
    if isinstance(member, ChatMemberRestricted):
        return Membership(
            status,
            can_send=bool(member.is_member and member.can_send_messages),
            can_pin=bool(member.can_pin_messages),
            can_manage_topics=bool(member.can_manage_topics),
        )
    if status in ("left", "kicked"):
        return Membership(status, can_send=False)
    return Membership(status)  # a plain member: sends, cannot pin


def hold_reason(membership: Membership) -> str | None:
    if not membership.present:
        return "removed"
    if not membership.can_send:
        return "cannot_send"
    return None


WHAT_TO_DO = (
    "Tambahkan bot kembali ke grup helpdesk dan jadikan admin (hak: kirim pesan, sematkan "
    "pesan, kelola topik)."
)


def held_text(group_id: int, reason: str, waiting: int) -> str:
    why = {
        "removed": "dikeluarkan dari grup helpdesk",
        "cannot_send": "tidak lagi boleh mengirim pesan di grup helpdesk",
        "no_chat": "tidak menemukan grup helpdesk",
    }.get(reason, "tidak dapat mengirim pesan ke grup helpdesk")
    return (
        f"⚠️ Bot {why} (<code>{group_id}</code>). Kartu tiket dan pemberitahuan "
        f"ditahan{f' ({waiting} menunggu)' if waiting else ''}, tidak ada yang hilang; "
        "semuanya dikirim begitu bot dapat menulis lagi.\n"
        f"Yang perlu dilakukan: {WHAT_TO_DO}"
    )


def rights_text(group_id: int, lost: list[str]) -> str:
    return (
        f"⚠️ Hak bot di grup helpdesk (<code>{group_id}</code>) berkurang: tidak dapat "
        f"{' dan '.join(lost)}. Kartu tetap dikirim. Yang perlu dilakukan: jadikan bot admin "
        "dengan hak itu."
    )


def released_text(waiting: int) -> str:
    return "✅ Bot dapat menulis lagi di grup helpdesk" + (
        f"; {waiting} pesan yang tertahan dikirim sekarang, berurutan." if waiting else "."
    )


def lost_rights(before: Membership, after: Membership) -> list[str]:
    lost = []
    if before.can_pin and not after.can_pin:
        lost.append("menyematkan pesan")
    if before.can_manage_topics and not after.can_manage_topics:
        lost.append("mengelola topik")
    return lost
