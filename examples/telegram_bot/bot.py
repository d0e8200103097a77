"""A Telegram bot whose prompts are chosen by a bandit (python-telegram-bot 21 or later).

``/start`` serves a prompt chosen by octobandit with two inline buttons; pressing one
rewards that prompt's decision (👍 1, 👎 0). A prompt nobody answers counts as 0 once
its attribution window closes. ``/report`` shows the statistics and the conclusion.
Admins (``admin_ids``) load "cheater mode" fixtures: ``/cheat NAME`` sets arms'
statistics and adds arms with priors from ``fixtures/NAME.yaml`` (or ``.json``).

All state lives in octobandit (an SQLite file, a PostgreSQL database or a service):
the bot can be restarted, or run as several processes, without losing anything.

Run it: ``TELEGRAM_BOT_TOKEN=... OCTOBANDIT_URL=octobandit.db python bot.py``
(see README.md).
"""

from __future__ import annotations

import inspect
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from octobandit import errors
from octobandit.fixtures import SUFFIXES, Fixture, FixtureError, load_fixture
from octobandit.integrations import Bandits
from octobandit.integrations.aio import AsyncBandits, ThreadedBandits, connect_async

log = logging.getLogger("telegram_bot")

FIXTURES = Path(__file__).parent / "fixtures"

#: the seed's two prompts, ε-greedy; a prompt not answered within an hour counts as 👎
EXPERIMENT: dict[str, Any] = {
    "id": "tg-prompts",
    "name": "Telegram prompts",
    "policy": {"type": "epsilon_greedy", "epsilon": 0.1},
    "arms": [
        {"id": "arm1", "payload": {"text": "This is arm *1*"}},
        {"id": "arm2", "payload": {"text": "This _is_ arm _2_"}},
    ],
    "reward": {"type": "binary", "attribution_window": 3600, "default": 0},
}

#: callback data: ``r|<reward>|<decision id>`` (Telegram allows 64 bytes)
CALLBACK = re.compile(r"r\|([01])\|([A-Za-z0-9_.:-]{1,60})")
FIXTURE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def callback_data(value: int, decision_id: str) -> str:
    data = f"r|{value}|{decision_id}"
    if len(data.encode()) > 64:
        raise ValueError(f"decision id too long for Telegram's callback data: {decision_id!r}")
    return data


def prompt_text(payload: Any) -> str:
    if isinstance(payload, Mapping):
        return str(payload.get("text", ""))
    return str(payload)


def report_text(stats: Any, conclusion: Any) -> str:
    lines = [f"Experiment {stats.experiment_id} ({stats.status})"]
    for arm in stats.arms:
        mean = "-" if arm.mean_reward is None else f"{arm.mean_reward:.2f}"
        lines.append(
            f"{arm.arm_id}: {arm.decisions} prompts, {arm.rewards:g} answered, "
            f"{arm.reward_sum:g} 👍, mean {mean}"
            + (f", {arm.pending} pending" if arm.pending else "")
        )
    if conclusion.met:
        lines.append(f"Conclusion: {conclusion.winner} wins ({conclusion.reason})")
    else:
        leader = f"; leader {conclusion.leader}" if conclusion.leader else ""
        best = "" if conclusion.prob_best is None else f" (P(best) {conclusion.prob_best:.2f})"
        lines.append(f"Conclusion: not yet ({conclusion.reason}){leader}{best}")
    return "\n".join(lines)


class PromptBot:
    """The bot's handlers; everything they know comes from octobandit."""

    def __init__(
        self,
        bandits: AsyncBandits | Bandits,
        experiment: Mapping[str, Any] = EXPERIMENT,
        *,
        admin_ids: Iterable[int] = (),
        fixtures_dir: Path = FIXTURES,
    ) -> None:
        self.bandits: AsyncBandits = (
            cast(AsyncBandits, bandits)
            if inspect.iscoroutinefunction(getattr(bandits, "decide", None))
            else ThreadedBandits(cast(Bandits, bandits))
        )
        self.experiment = dict(experiment)
        self.experiment_id = str(experiment["id"])
        self.admin_ids = frozenset(admin_ids)
        self.fixtures_dir = fixtures_dir

    async def post_init(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        await self.bandits.ensure_experiment(self.experiment)

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A prompt chosen by the bandit, with its reward buttons."""
        if update.effective_message is None:
            return
        d = await self.bandits.decide(self.experiment_id)  # a fresh draw each time
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("👍", callback_data=callback_data(1, d.decision_id)),
                    InlineKeyboardButton("👎", callback_data=callback_data(0, d.decision_id)),
                ]
            ]
        )
        await update.effective_message.reply_text(
            prompt_text(d.payload), parse_mode="Markdown", reply_markup=keyboard
        )

    async def button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A reward button: reward that prompt's decision (once)."""
        query = update.callback_query
        if query is None:
            return
        match = CALLBACK.fullmatch(query.data or "")
        if match is None:
            await query.answer("Unknown button.")
            return
        value, decision_id = int(match[1]), match[2]
        try:
            answer = await self.bandits.reward(self.experiment_id, decision_id, float(value))
        except errors.NotFound:
            await query.answer("This prompt is not known (any more).")
            return
        if answer.accepted:
            await query.answer("Thanks, counted!")
            await query.edit_message_reply_markup(reply_markup=None)
        elif answer.late:
            await query.answer("Too late: this prompt already counted as unanswered.")
        else:
            await query.answer("Already counted.")

    async def report(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The statistics and the conclusion."""
        if update.effective_message is None:
            return
        stats = await self.bandits.stats(self.experiment_id)
        conclusion = await self.bandits.conclusion(self.experiment_id)
        await update.effective_message.reply_text(report_text(stats, conclusion))

    async def cheat(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Admins: ``/cheat NAME`` loads ``fixtures/NAME.{yaml,yml,json}``: arms'
        statistics (replacing theirs) and new arms with priors. ``/cheat``: the list."""
        message = update.effective_message
        if message is None:
            return
        user = update.effective_user
        if user is None or user.id not in self.admin_ids:
            await message.reply_text("Not allowed: admins only.")
            return
        names = sorted(p.stem for p in self.fixtures_dir.glob("*") if p.suffix in SUFFIXES)
        if not context.args:
            await message.reply_text("Fixtures: " + (", ".join(names) or "none"))
            return
        name = context.args[0]
        paths = [self.fixtures_dir / f"{name}{ext}" for ext in SUFFIXES]
        path = next((p for p in paths if p.is_file()), None)
        if not FIXTURE_NAME.fullmatch(name) or path is None:
            await message.reply_text(f"No fixture {name!r}. Fixtures: {', '.join(names)}")
            return
        try:
            done = await self.apply_fixture(load_fixture(path))
        except (FixtureError, errors.OctobanditError) as exc:
            await message.reply_text(f"Fixture {name!r} not loaded: {exc}")
            return
        await message.reply_text(f"Fixture {name!r} loaded: " + "; ".join(done))

    async def apply_fixture(self, fixture: Fixture) -> list[str]:
        """Apply a fixture (the format of :mod:`octobandit.fixtures`, shared with
        ``octobandit fixtures load``)."""
        done = []
        for spec in fixture.arms:
            try:
                await self.bandits.add_arm(self.experiment_id, spec)
                done.append(f"arm {spec['id']} added")
            except errors.Conflict:
                done.append(f"arm {spec['id']} exists, kept")
        for arm_id, stats in fixture.stats.items():
            await self.bandits.set_arm_stats(self.experiment_id, arm_id, stats)
            done.append(f"{arm_id} set to {stats}")
        return done


def build_application(
    token: str,
    bandits: AsyncBandits | Bandits,
    *,
    experiment: Mapping[str, Any] = EXPERIMENT,
    admin_ids: Iterable[int] = (),
    fixtures_dir: Path = FIXTURES,
    base_url: str | None = None,
    base_file_url: str | None = None,
) -> Application[Any, Any, Any, Any, Any, Any]:
    """The bot as a python-telegram-bot :class:`Application`. ``base_url`` (and
    ``base_file_url``) point it at another Bot API server than Telegram's, such as a
    local ``telegram-bot-api`` or a test's fake."""
    bot = PromptBot(bandits, experiment, admin_ids=admin_ids, fixtures_dir=fixtures_dir)
    builder = ApplicationBuilder().token(token).post_init(bot.post_init)
    if base_url is not None:
        builder = builder.base_url(base_url)
    if base_file_url is not None:
        builder = builder.base_file_url(base_file_url)
    application = builder.build()
    application.add_handler(CommandHandler("start", bot.start))
    application.add_handler(CommandHandler("report", bot.report))
    application.add_handler(CommandHandler("cheat", bot.cheat))
    application.add_handler(CallbackQueryHandler(bot.button, pattern=r"^r\|"))
    application.bot_data["prompt_bot"] = bot
    return application


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    token = os.environ["TELEGRAM_BOT_TOKEN"]
    bandits = connect_async(os.environ.get("OCTOBANDIT_URL", "octobandit.db"))
    admins = [int(x) for x in os.environ.get("ADMIN_IDS", "").replace(",", " ").split()]
    application = build_application(
        token, bandits, admin_ids=admins, base_url=os.environ.get("TELEGRAM_BASE_URL")
    )

    async def close(_: Application[Any, Any, Any, Any, Any, Any]) -> None:
        await bandits.aclose()

    application.post_shutdown = close
    application.run_polling(allowed_updates=Update.ALL_TYPES)


if __name__ == "__main__":
    main()
