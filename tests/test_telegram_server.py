"""The Bot API test server works with python-telegram-bot's real request stack (httpx)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    RetryAfter,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.servers.telegram import ApiError, BotApiServer, RateLimits, parse_html

GROUP = -1001234567890
KEYBOARD = InlineKeyboardMarkup(
    [[InlineKeyboardButton("Ambil", callback_data="take:5")],
     [InlineKeyboardButton("Tutup", callback_data="close:5")]]
)  # fmt: skip


def make_bot(server: BotApiServer, token: str | None = None) -> Bot:
    # Exactly what the app does with TELEGRAM_API_URL = server.base_url.
    api_url = server.base_url
    return Bot(
        token or server.token, base_url=f"{api_url}/bot", base_file_url=f"{api_url}/file/bot"
    )


@pytest.fixture(autouse=True)
def _retry_after_as_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB 22.2+ warns when RetryAfter.retry_after is read as an int; opt in to timedelta."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def bot(telegram_server: BotApiServer) -> AsyncIterator[Bot]:
    telegram_server.group(GROUP, "Helpdesk LPSE")
    async with make_bot(telegram_server) as bot:
        yield bot


@asynccontextmanager
async def polling(server: BotApiServer, app: Application) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()


def build_app(server: BotApiServer) -> Application:  # type: ignore[type-arg]
    server.group(GROUP, "Helpdesk LPSE")
    return (
        ApplicationBuilder()
        .token(server.token)
        .base_url(server.bot_base_url)
        .base_file_url(server.bot_base_file_url)
        .build()
    )


# -- plain Bot ------------------------------------------------------------------------


async def test_get_me(bot: Bot, telegram_server: BotApiServer) -> None:
    me = await bot.get_me()
    assert me.id == telegram_server.bot_id
    assert me.username == telegram_server.bot_username == bot.username
    assert [c.method for c in telegram_server.calls][:1] == ["getMe"]


async def test_wrong_token_is_unauthorized(telegram_server: BotApiServer) -> None:
    with pytest.raises(InvalidToken, match="rejected by the server"):
        async with make_bot(telegram_server, token="999:wrong"):
            pass


async def test_unknown_method_is_404(bot: Bot, telegram_server: BotApiServer) -> None:
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("sendTelepathy", api_kwargs={"chat_id": GROUP})
    assert telegram_server.calls[-1].response == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found",
    }


async def test_send_message_html_with_inline_keyboard(
    bot: Bot, telegram_server: BotApiServer
) -> None:
    text = "<b>Tiket #5</b> dari <i>budi@example.test</i>: 1 &lt; 2 &amp; <code>x</code>"
    sent = await bot.send_message(GROUP, text, parse_mode="HTML", reply_markup=KEYBOARD)
    assert sent.message_id == 1
    assert sent.text == "Tiket #5 dari budi@example.test: 1 < 2 & x"
    assert sent.reply_markup == KEYBOARD
    assert [e.type for e in sent.entities] == ["bold", "italic", "code"]
    assert (
        sent.text_html
        == "<b>Tiket #5</b> dari <i>budi@example.test</i>: 1 &lt; 2 &amp; <code>x</code>"
    )

    [stored] = telegram_server.messages(GROUP)
    assert stored.text == text and stored.parse_mode == "HTML"
    assert stored.plain_text == sent.text
    assert stored.callback_data == ["take:5", "close:5"]
    assert stored.reply_markup == KEYBOARD.to_dict()
    call = telegram_server.calls_to("sendMessage")[0]
    assert call.params["chat_id"] == GROUP  # JSON-decoded from the form field
    assert isinstance(call.params["reply_markup"], dict)  # a JSON string on the wire


async def test_send_to_unknown_chat(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(-100999, "hai")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("baris<br>baris", 'unsupported start tag "br" at byte offset 5'),
        ("1 < 2", 'unsupported start tag "" at byte offset 2'),
        ("<b>tebal", 'can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ('<span class="x">s</span>', 'tag "span" must have class "tg-spoiler"'),
        ("Tom & Jerry", 'character "&" must be escaped'),
    ],
)
async def test_bad_html_cannot_parse_entities(bot: Bot, text: str, reason: str) -> None:
    with pytest.raises(BadRequest) as caught:
        await bot.send_message(GROUP, text, parse_mode="HTML")
    # Telegram: "Bad Request: can't parse entities: Unsupported start tag ..."; PTB strips
    # "Bad Request: " and capitalize()s the rest, which lower-cases everything after "C".
    assert caught.value.message.startswith("Can't parse entities: ")
    assert reason in caught.value.message


def test_html_parser_knows_telegrams_tags() -> None:
    text = (
        '<a href="https://lpse.test/?a=1&amp;b=2">tautan</a> <s>x</s> <u>u</u> '
        '<tg-spoiler>rahasia</tg-spoiler> <span class="tg-spoiler">juga</span> '
        '<pre><code class="language-python">print(1)</code></pre> <blockquote>kutip</blockquote> '
        "&#65;&#x42;&quot;"
    )
    plain, entities = parse_html(text)
    assert plain.endswith('AB"')
    assert {
        "type": "text_link",
        "offset": 0,
        "length": 6,
        "url": "https://lpse.test/?a=1&b=2",
    } in entities
    assert {"type": "pre", "offset": 24, "length": 8, "language": "python"} in entities
    assert parse_html("Tom & Jerry", strict_ampersand=False)[0] == "Tom & Jerry"  # Telegram's rule
    with pytest.raises(ApiError, match="Unclosed start tag"):
        parse_html("<b")


async def test_text_length_is_counted_after_entity_parsing(bot: Bot) -> None:
    await bot.send_message(GROUP, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    await bot.send_message(GROUP, "&lt;" * 4096, parse_mode="HTML")
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(GROUP, "a" * 4097)
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(GROUP, "<b> </b>", parse_mode="HTML")


async def test_callback_data_over_64_bytes(bot: Bot) -> None:
    await bot.send_message(
        GROUP,
        "ok",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 32)]]),
    )
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 32 + "a")]])
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(GROUP, "terlalu panjang", reply_markup=markup)


async def test_edit_not_modified_and_keyboard_dropped(
    bot: Bot, telegram_server: BotApiServer
) -> None:
    sent = await bot.send_message(GROUP, "<b>Tiket</b>", parse_mode="HTML", reply_markup=KEYBOARD)
    with pytest.raises(BadRequest, match="Message is not modified: specified new message content"):
        await bot.edit_message_text(
            "<b>Tiket</b>", GROUP, sent.message_id, parse_mode="HTML", reply_markup=KEYBOARD
        )
    # Same text without parse_mode loses the bold entity: that is a modification.
    edited = await bot.edit_message_text(
        "<b>Tiket</b>", GROUP, sent.message_id, reply_markup=KEYBOARD
    )
    assert isinstance(edited, type(sent)) and edited.text == "<b>Tiket</b>"
    # An edit that does not repeat the keyboard removes it, as Telegram does.
    await bot.edit_message_text("Tiket diambil", GROUP, sent.message_id)
    state = telegram_server.message(GROUP, sent.message_id)
    assert (state.reply_markup, state.edit_count) == (None, 2)
    assert state.versions == ("<b>Tiket</b>", "<b>Tiket</b>")
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(GROUP, sent.message_id, reply_markup=None)
    await bot.edit_message_reply_markup(GROUP, sent.message_id, reply_markup=KEYBOARD)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", GROUP, 999)
    assert await bot.delete_message(GROUP, sent.message_id)
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(GROUP, sent.message_id)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", GROUP, sent.message_id)
    assert telegram_server.message(GROUP, sent.message_id).deleted


async def test_reply_to_unknown_message(bot: Bot, telegram_server: BotApiServer) -> None:
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await bot.send_message(GROUP, "balas", reply_to_message_id=77)
    sent = await bot.send_message(
        GROUP, "balas", reply_to_message_id=77, allow_sending_without_reply=True
    )
    assert sent.reply_to_message is None
    again = await bot.send_message(GROUP, "balas", reply_to_message_id=sent.message_id)
    assert again.reply_to_message is not None
    assert again.reply_to_message.message_id == sent.message_id
    assert telegram_server.messages(GROUP)[-1].reply_to_message_id == sent.message_id


async def test_forced_429_raises_retry_after(bot: Bot, telegram_server: BotApiServer) -> None:
    telegram_server.flood_next("sendMessage", count=2, retry_after=7)
    for _ in range(2):
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(GROUP, "banjir")
        assert caught.value.retry_after == dt.timedelta(seconds=7)
    await bot.send_message(GROUP, "lolos")
    assert telegram_server.too_many_requests == 2
    assert telegram_server.calls_to("sendMessage")[0].response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    assert len(telegram_server.sent_times(GROUP)) == 1


async def test_group_limit_per_minute(bot: Bot, telegram_server: BotApiServer) -> None:
    telegram_server.limits = RateLimits(group_per_minute=3)
    sent = [await bot.send_message(GROUP, f"pesan {n}") for n in range(3)]
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(GROUP, "keempat")
    retry_after = caught.value.retry_after
    assert isinstance(retry_after, dt.timedelta)
    assert dt.timedelta(seconds=59) <= retry_after <= dt.timedelta(seconds=60)
    await bot.edit_message_text("diubah", GROUP, sent[0].message_id)  # edits do not count...
    telegram_server.limits.count_edits = True
    with pytest.raises(RetryAfter):  # ...unless asked to
        await bot.edit_message_text("lagi", GROUP, sent[0].message_id)
    telegram_server.limits.enabled = False
    await bot.send_message(GROUP, "bebas")
    assert telegram_server.too_many_requests == 2


async def test_global_and_per_chat_limits(bot: Bot, telegram_server: BotApiServer) -> None:
    telegram_server.limits = RateLimits(global_per_second=2, chat_per_second=1)
    with pytest.raises(RetryAfter):
        for _ in range(2):
            await bot.send_message(GROUP, "cepat")
    telegram_server.limits.chat_per_second = None
    await bot.send_message(GROUP, "kedua")
    with pytest.raises(RetryAfter):
        await bot.send_message(GROUP, "ketiga dalam satu detik")


async def test_send_document_keeps_bytes(bot: Bot, telegram_server: BotApiServer) -> None:
    content = bytes(range(256)) * 10
    sent = await bot.send_document(
        GROUP,
        document=content,
        filename="laporan tiket.pdf",
        caption="<b>Lampiran</b>",
        parse_mode="HTML",
    )
    assert sent.document is not None and sent.caption == "Lampiran"
    [stored] = telegram_server.messages(GROUP)
    assert (stored.document, stored.filename, stored.mime_type) == (
        content,
        "laporan tiket.pdf",
        "application/pdf",
    )
    file = await bot.get_file(sent.document.file_id)  # downloaded through base_file_url
    assert bytes(await file.download_as_bytearray()) == content
    photo = await bot.send_photo(GROUP, photo=b"\x89PNG fake", filename="a.png")
    assert telegram_server.message(GROUP, photo.message_id).photo == b"\x89PNG fake"


async def test_get_updates_offset_limit_timeout(bot: Bot, telegram_server: BotApiServer) -> None:
    budi = telegram_server.user(501, "Budi", "budi")
    first = telegram_server.send_text(GROUP, budi, "satu")
    telegram_server.send_text(GROUP, budi, "dua")
    updates = await bot.get_updates(timeout=0, limit=1)
    assert [u.update_id for u in updates] == [first["update_id"]]
    assert len(await bot.get_updates(timeout=0)) == 2  # nothing confirmed yet
    updates = await bot.get_updates(offset=first["update_id"] + 1, timeout=0)
    assert [u.message.text for u in updates if u.message] == ["dua"]
    assert telegram_server.pending_updates == 1
    start = time.monotonic()
    assert await bot.get_updates(offset=first["update_id"] + 2, timeout=1) == ()
    assert 0.9 <= time.monotonic() - start < 3
    assert telegram_server.pending_updates == 0
    # A long poll ends as soon as an update arrives.
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, telegram_server.send_text, GROUP, budi, "tiga")
    start = time.monotonic()
    updates = await bot.get_updates(offset=first["update_id"] + 2, timeout=5)
    assert [u.message.text for u in updates if u.message] == ["tiga"]
    assert time.monotonic() - start < 2
    # allowed_updates filters, and the setting sticks to later calls.
    query = telegram_server.press(
        GROUP,
        (await bot.send_message(GROUP, "t", reply_markup=KEYBOARD)).message_id,
        budi,
        "take:5",
    )
    updates = await bot.get_updates(offset=-1, timeout=0, allowed_updates=["message"])
    assert updates == ()
    updates = await bot.get_updates(timeout=0, allowed_updates=[])
    assert updates[0].callback_query is not None and updates[0].callback_query.id == query


async def test_second_long_poll_ends_the_first_with_conflict(
    bot: Bot, telegram_server: BotApiServer
) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=3))
    await telegram_server.wait_for_async(lambda: telegram_server.pending_updates == 0)
    await asyncio.sleep(0.1)
    async with make_bot(telegram_server) as other:
        assert await other.get_updates(timeout=0) == ()
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await first


async def test_privacy_mode_hides_plain_group_messages(telegram_server: BotApiServer) -> None:
    telegram_server.privacy_mode = True
    telegram_server.group(GROUP)
    budi = telegram_server.user(501, "Budi")
    async with make_bot(telegram_server) as bot:
        card = await bot.send_message(GROUP, "Tiket #5")
        assert telegram_server.send_text(GROUP, budi, "obrolan biasa")["update_id"] is None
        telegram_server.send_text(GROUP, budi, "/tiket 5")
        telegram_server.reply_to(GROUP, card.message_id, budi, "balasan")
        telegram_server.send_private(budi, "pesan pribadi")
        updates = await bot.get_updates(timeout=0)
        assert not (await bot.get_me()).can_read_all_group_messages
    assert [u.message.text for u in updates if u.message] == [
        "/tiket 5",
        "balasan",
        "pesan pribadi",
    ]


async def test_chat_member_status_and_commands(bot: Bot, telegram_server: BotApiServer) -> None:
    budi = telegram_server.user(501, "Budi")
    sari = telegram_server.user(502, "Sari")
    telegram_server.set_member_status(GROUP, 502, "administrator")
    telegram_server.set_member_status(GROUP, 503, "left")
    telegram_server.user(503, "Tono")
    assert (await bot.get_chat_member(GROUP, budi["id"])).status == "member"
    assert (await bot.get_chat_member(GROUP, sari["id"])).status == "administrator"
    assert (await bot.get_chat_member(GROUP, 503)).status == "left"
    assert (await bot.get_chat_member(GROUP, bot.id)).status == "administrator"
    chat = await bot.get_chat(GROUP)
    assert (chat.type, chat.title) == ("supergroup", "Helpdesk LPSE")
    await bot.set_my_commands([("tiket", "Lihat tiket"), ("ambil", "Ambil tiket")])
    assert [c.command for c in await bot.get_my_commands()] == ["tiket", "ambil"]
    with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
        await bot.set_my_commands([("Tiket-Baru", "x")])
    telegram_server.set_member_status(GROUP, bot.id, "kicked")
    with pytest.raises(Forbidden, match="bot was kicked from the supergroup chat"):
        await bot.send_message(GROUP, "halo")
    assert await bot.delete_webhook() and await bot.log_out() and await bot.close()


# -- Application with polling ------------------------------------------------------------


async def test_command_reaches_command_handler(telegram_server: BotApiServer) -> None:
    app = build_app(telegram_server)
    seen: list[tuple[list[str], int, str]] = []

    async def tiket(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None and update.effective_message is not None
        seen.append(
            (list(context.args or []), update.effective_chat.id, update.effective_chat.type)
        )
        await update.effective_message.reply_text(
            f"Tiket {context.args[0] if context.args else '?'}"
        )

    app.add_handler(CommandHandler("tiket", tiket))
    budi = telegram_server.user(501, "Budi", "budi")
    async with polling(telegram_server, app):
        telegram_server.send_text(GROUP, budi, "/tiket 5")
        telegram_server.send_text(GROUP, budi, f"/tiket@{telegram_server.bot_username} 6")
        telegram_server.send_text(GROUP, budi, "/tiket@other_bot 7")  # not for us
        telegram_server.send_private(budi, "/tiket 8")
        await telegram_server.wait_for_async(lambda: len(telegram_server.messages(budi["id"])) == 1)
    assert seen == [
        (["5"], GROUP, "supergroup"),
        (["6"], GROUP, "supergroup"),
        (["8"], 501, "private"),
    ]
    replies = telegram_server.messages(GROUP)
    assert [m.text for m in replies] == ["Tiket 5", "Tiket 6"]
    assert replies[0].reply_to_message_id == 1  # reply_text quotes the command
    assert telegram_server.pending_updates == 0  # PTB confirmed everything on stop


async def test_press_reaches_callback_handler_and_answer_is_recorded(
    telegram_server: BotApiServer,
) -> None:
    app = build_app(telegram_server)
    pressed: list[tuple[str | None, int, str]] = []

    async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.message is not None
        pressed.append((query.data, query.message.message_id, query.from_user.first_name))
        await query.answer("Diambil", show_alert=True)
        await query.edit_message_text("Tiket #5 diambil Sari")

    app.add_handler(CallbackQueryHandler(on_press))
    sari = telegram_server.user(502, "Sari", "sari")
    async with polling(telegram_server, app):
        card = await app.bot.send_message(GROUP, "Tiket #5", reply_markup=KEYBOARD)
        query_id = telegram_server.press(GROUP, card.message_id, sari, "take:5")
        with pytest.raises(ValueError, match="no button"):
            telegram_server.press(GROUP, card.message_id, sari, "nope")
        answer = await telegram_server.wait_for_async(
            lambda: telegram_server.answered_callbacks.get(query_id)
        )
        await telegram_server.wait_for_async(
            lambda: telegram_server.message(GROUP, card.message_id).edit_count == 1
        )
        with pytest.raises(BadRequest, match="Query is too old"):
            await app.bot.answer_callback_query(query_id)
    assert pressed == [("take:5", card.message_id, "Sari")]
    assert answer is not None
    assert (answer.text, answer.show_alert) == ("Diambil", True)
    state = telegram_server.message(GROUP, card.message_id)
    assert (state.text, state.reply_markup) == ("Tiket #5 diambil Sari", None)


async def test_reply_to_bot_message_reaches_message_handler(telegram_server: BotApiServer) -> None:
    app = build_app(telegram_server)
    replies: list[tuple[int, str, bool]] = []

    async def on_reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None and message.reply_to_message is not None
        replied = message.reply_to_message
        assert replied.from_user is not None
        replies.append((replied.message_id, message.text or "", replied.from_user.is_bot))

    app.add_handler(MessageHandler(filters.REPLY & filters.TEXT & ~filters.COMMAND, on_reply))
    sari = telegram_server.user(502, "Sari", "sari")
    async with polling(telegram_server, app):
        card = await app.bot.send_message(GROUP, "Tiket #5: balas untuk menjawab")
        telegram_server.reply_to(GROUP, card.message_id, sari, "Sudah direset, silakan coba lagi")
        await telegram_server.wait_for_async(lambda: replies)
    assert replies == [(card.message_id, "Sudah direset, silakan coba lagi", True)]


# -- lifecycle --------------------------------------------------------------------------


def test_stop_ends_long_poll_and_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    server = BotApiServer()
    server.start()
    result: list[float] = []

    def long_poll() -> None:
        start = time.monotonic()
        # Either the empty answer or a closed connection, but at once.
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                f"{server.bot_base_url}{server.token}/getUpdates",
                data={"timeout": "30"},
                timeout=40,
            )
        result.append(time.monotonic() - start)

    client = threading.Thread(target=long_poll)
    client.start()
    server.wait_for(lambda: server.pending_updates == 0, 1)
    time.sleep(0.3)  # the request is now waiting in the long poll
    start = time.monotonic()
    server.stop()
    client.join(5)
    assert time.monotonic() - start < 3
    assert not client.is_alive() and result and result[0] < 5
    assert set(threading.enumerate()) <= before
    server.stop()  # idempotent
