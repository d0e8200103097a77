"""Flask-MAB's example app on octobandit: a button whose colour and text are two bandits.

The only change from a Flask-MAB app is the imports (``flask_mab`` →
``octobandit.integrations.flask_mab``). The colour is an ε-greedy bandit, the text a
Thompson bandit; ``/`` assigns both (a logged decision each, remembered in the ``MAB``
cookie) and ``/btnclick`` rewards both decisions. Nobody reports "no click": an
assignment not clicked within the attribution window counts as a failure.

    python examples/flask_mab_app/app.py         # http://127.0.0.1:5000/

``/plain`` renders the same page without any bandit (the baseline of bench/_flask.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, render_template_string

from octobandit.integrations.flask_mab import BanditMiddleware, choose_arm, reward_endpt
from octobandit.integrations.flask_mab.bandits import EpsilonGreedyBandit, ThompsonBandit

COLOURS = {"green": "#b8e356", "red": "#fe1a00", "blue": "#79bbff"}
TEXTS = {
    "casual": "Hey dude, wanna buy me?",
    "neutral": "Add to cart",
    "formal": "Good day sir... care to purchase?",
}

PAGE = """<!DOCTYPE html>
<html><head><title>A bandit example</title></head>
<body style="text-align:center; font-family:Georgia,serif;">
<form method="get" action="/btnclick">
<button style="background-color:{{ colour }}; height:40px" type="submit">{{ text }}</button>
</form></body></html>
"""
THANKS = """<!DOCTYPE html>
<html><head><title>A bandit example</title></head>
<body style="text-align:center; font-family:Georgia,serif;">Thanks for purchasing!</body></html>
"""


def create_app(config: Mapping[str, Any] | None = None, *, colour_epsilon: float = 0.9) -> Flask:
    """The example app (``config`` overrides the defaults: an SQLite file in the working
    directory, a one-hour attribution window). The colour bandit explores
    ``colour_epsilon`` of the traffic: 0.9 in Flask-MAB's example app, 0.2 in its guide."""
    app = Flask(__name__)
    app.config["MAB_STORAGE_ENGINE"] = "JSONBanditStorage"
    app.config["MAB_STORAGE_OPTS"] = ("./bandit_storage.json",)
    app.config["MAB_COOKIE_SECURE"] = False  # the demo runs on plain http
    app.config.update(config or {})

    colour_bandit = EpsilonGreedyBandit(colour_epsilon)
    for arm_id, colour in COLOURS.items():
        colour_bandit.add_arm(arm_id, colour)
    text_bandit = ThompsonBandit()
    for arm_id, text in TEXTS.items():
        text_bandit.add_arm(arm_id, text)

    mab = BanditMiddleware()
    mab.init_app(app)
    app.add_bandit("color_btn", colour_bandit)  # type: ignore[attr-defined]
    app.add_bandit("txt_btn", text_bandit)  # type: ignore[attr-defined]

    @app.route("/")
    @choose_arm("color_btn")
    @choose_arm("txt_btn")
    def home(color_btn: str, txt_btn: str) -> str:
        """Render the button with the values the bandits chose for this user."""
        return render_template_string(PAGE, colour=color_btn, text=txt_btn)

    @app.route("/plain")
    def plain() -> str:
        """The same page without a bandit."""
        return render_template_string(PAGE, colour=COLOURS["green"], text=TEXTS["neutral"])

    @app.route("/btnclick")
    @reward_endpt("color_btn", 1.0)
    @reward_endpt("txt_btn", 1.0)
    def reward() -> str:
        """The button was clicked: both decisions get their reward."""
        return render_template_string(THANKS)

    return app


if __name__ == "__main__":
    create_app().run(debug=True)
