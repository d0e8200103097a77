"""Off-policy evaluation of an experiment's event log (a door over the engine and
:mod:`octobandit.evaluation`): the adapter from the log to the estimators' arrays,
candidate policies, the replay method with curves, and the shared output. See
docs/evaluation.md.
"""

from octobandit.offline.candidates import (
    Candidate,
    parse_candidates,
    replay,
    same_info_action_dist,
)
from octobandit.offline.log import (
    LoggedRounds,
    RoundJoiner,
    engine_rounds,
    http_rounds,
    rounds_from_pages,
    store_rounds,
)
from octobandit.offline.report import (
    ESTIMATORS,
    estimate_arrays,
    evaluate_log,
    plot_replay,
    print_table,
    reward_model,
)

__all__ = [
    "ESTIMATORS",
    "Candidate",
    "LoggedRounds",
    "RoundJoiner",
    "engine_rounds",
    "estimate_arrays",
    "evaluate_log",
    "http_rounds",
    "parse_candidates",
    "plot_replay",
    "print_table",
    "replay",
    "reward_model",
    "rounds_from_pages",
    "same_info_action_dist",
    "store_rounds",
]
