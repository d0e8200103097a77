"""obp 0.4.1's own numbers on the Open Bandit Dataset sample, for tests/evaluation/test_obd.py.

Runs obp's quickstart (examples/quickstart/obd.ipynb) on the sample in obp's wheel,
``random/all``: the evaluation policy is ``BernoulliTS`` with the ZOZOTOWN prior (campaign
``all``), its action distribution from ``compute_batch_action_dist``; IPW, SNIPW, DM and DR
with a ``RegressionModel`` (logistic regression on the context and the action context,
``fitting_method="normal"``) fitted with 3-fold cross-fitting, seed 12345; obp's bootstrap
intervals. Writes tests/data/obp_reference.json and the action distribution (K, L) to
tests/data/obd_bts_action_dist.json. Run it in the obp venv (obp needs pandas 1.x):

    bench/obp-venv && .venv-obp/bin/python bench/obp_reference.py

``--check-loader`` instead compares octobandit's ``load_obd`` (from this checkout's src/,
needing NumPy only) with obp's ``OpenBanditDataset`` on all six parts of obp's sample and
exits non-zero on a difference:

    PYTHONPATH=src .venv-obp/bin/python bench/obp_reference.py --check-loader

``--time-only`` runs the same and prints its timing as JSON without writing anything
(bench/evaluation.py uses it); ``--n-bootstrap N`` sets the resamples (1,000 by default, as
octobandit's ``evaluate``; obp's own default is 100).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/http.py would shadow the standard library's http (imported by torch, which obp
# imports): drop this script's directory from the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
COMMAND = "bench/obp-venv && .venv-obp/bin/python bench/obp_reference.py"
SEED = 12345
N_SIM = 100_000


def run(n_bootstrap: int) -> tuple[dict[str, object], list[list[float]], dict[str, float]]:
    t0 = time.perf_counter()
    import numpy as np
    from obp.dataset import OpenBanditDataset
    from obp.ope import (
        DirectMethod,
        DoublyRobust,
        InverseProbabilityWeighting,
        OffPolicyEvaluation,
        RegressionModel,
        SelfNormalizedInverseProbabilityWeighting,
    )
    from obp.policy import BernoulliTS
    from sklearn.linear_model import LogisticRegression

    t_import = time.perf_counter()
    dataset = OpenBanditDataset(behavior_policy="random", campaign="all")
    feedback = dataset.obtain_batch_bandit_feedback()
    t_load = time.perf_counter()
    policy = BernoulliTS(
        n_actions=dataset.n_actions,
        len_list=dataset.len_list,
        is_zozotown_prior=True,
        campaign="all",
        random_state=SEED,
    )
    action_dist = policy.compute_batch_action_dist(n_sim=N_SIM, n_rounds=feedback["n_rounds"])
    t_policy = time.perf_counter()
    model = RegressionModel(
        n_actions=dataset.n_actions,
        len_list=dataset.len_list,
        action_context=dataset.action_context,
        base_model=LogisticRegression(max_iter=1000, random_state=SEED),
        fitting_method="normal",
    )
    q = model.fit_predict(
        context=feedback["context"],
        action=feedback["action"],
        reward=feedback["reward"],
        position=feedback["position"],
        pscore=feedback["pscore"],
        n_folds=3,
        random_state=SEED,
    )
    t_model = time.perf_counter()
    ope = OffPolicyEvaluation(
        bandit_feedback=feedback,
        ope_estimators=[
            InverseProbabilityWeighting(),
            SelfNormalizedInverseProbabilityWeighting(),
            DirectMethod(),
            DoublyRobust(),
        ],
    )
    values = ope.estimate_policy_values(action_dist=action_dist, estimated_rewards_by_reg_model=q)
    intervals = ope.estimate_intervals(
        action_dist=action_dist,
        estimated_rewards_by_reg_model=q,
        n_bootstrap_samples=n_bootstrap,
        random_state=SEED,
    )
    t_end = time.perf_counter()
    # every round has the same distribution (compute_batch_action_dist tiles one (K, L))
    assert np.array_equal(action_dist, np.broadcast_to(action_dist[0], action_dist.shape))
    estimates = {
        name: {
            "value": float(values[name]),
            "ci95": [
                float(intervals[name]["95.0% CI (lower)"]),
                float(intervals[name]["95.0% CI (upper)"]),
            ],
        }
        for name in ("ipw", "snipw", "dm", "dr")
    }
    # the row order obp evaluates (the file's index after its sort by timestamp)
    order = [int(i) for i in dataset.data.index.to_numpy()]
    reference = {
        "estimates": estimates,
        "n_rounds": int(feedback["n_rounds"]),
        "n_actions": int(dataset.n_actions),
        "len_list": int(dataset.len_list),
        "reward_mean": float(feedback["reward"].mean()),
        "context_shape": list(feedback["context"].shape),
        "action_context_shape": list(dataset.action_context.shape),
        "rows_in_file_order": order == sorted(order),
    }
    timing = {
        "import_s": t_import - t0,
        "load_s": t_load - t_import,
        "policy_s": t_policy - t_load,
        "reward_model_s": t_model - t_policy,
        "estimators_s": t_end - t_model,
        "total_s": t_end - t0,
    }
    return reference, action_dist[0].tolist(), timing


def check_loader() -> bool:
    """octobandit's arrays against obp's for every part of obp's sample: the integers and
    the one-hot context identical; the floats (propensities, item_feature_0) to 1e-12,
    since pandas' default CSV float parser is not correctly rounded (off by up to ~1e-12
    relative on OBD's propensities) and octobandit's is."""
    import numpy as np
    import obp
    from obp.dataset import OpenBanditDataset

    from octobandit.evaluation.obd import load_obd

    root = Path(obp.__file__).parent / "dataset" / "obd"
    ok = True
    for policy in ("random", "bts"):
        for campaign in ("all", "men", "women"):
            theirs = OpenBanditDataset(behavior_policy=policy, campaign=campaign)
            feedback = theirs.obtain_batch_bandit_feedback()
            ours = load_obd(root / policy / campaign)
            same = {
                key: bool(
                    np.array_equal(
                        np.asarray(feedback[key], dtype=float), getattr(ours, key).astype(float)
                    )
                )
                for key in ("action", "position", "reward", "context")
            }
            same["n_actions"] = int(feedback["n_actions"]) == ours.n_actions
            same["len_list"] = theirs.len_list == ours.len_list
            same["pscore"] = bool(np.allclose(feedback["pscore"], ours.pscore, rtol=1e-12, atol=0))
            same["action_context"] = bool(
                np.allclose(
                    theirs.action_context.astype(float), ours.action_context, rtol=1e-12, atol=0
                )
            )
            print(policy, campaign, json.dumps(same))
            ok = ok and all(same.values())
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-only", action="store_true")
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--check-loader", action="store_true")
    args = parser.parse_args()
    if args.check_loader:
        sys.exit(0 if check_loader() else 1)
    reference, dist, timing = run(args.n_bootstrap)
    if args.time_only:
        print(json.dumps(timing))
        return
    import numpy
    import obp
    import pandas
    import sklearn

    reference["settings"] = {
        "dataset": "OpenBanditDataset(behavior_policy='random', campaign='all'), obp's sample",
        "evaluation_policy": (
            f"BernoulliTS(n_actions, len_list, is_zozotown_prior=True, campaign='all', "
            f"random_state={SEED}).compute_batch_action_dist(n_sim={N_SIM}, n_rounds)"
        ),
        "reward_model": (
            f"RegressionModel(n_actions, len_list, action_context, base_model="
            f"LogisticRegression(max_iter=1000, random_state={SEED}), fitting_method='normal')"
            f".fit_predict(context, action, reward, position, pscore, n_folds=3, "
            f"random_state={SEED})"
        ),
        "estimators": "IPW, SNIPW, DM, DR (obp.ope.OffPolicyEvaluation)",
        "intervals": (
            f"estimate_intervals(n_bootstrap_samples={args.n_bootstrap}, random_state={SEED})"
        ),
    }
    reference["versions"] = {
        "obp": obp.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
        "python": sys.version.split()[0],
    }
    reference["command"] = COMMAND
    data = ROOT / "tests" / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "obp_reference.json").write_text(json.dumps(reference, indent=2) + "\n")
    (data / "obd_bts_action_dist.json").write_text(json.dumps({"action_dist": dist}) + "\n")
    print(json.dumps(reference["estimates"], indent=2))
    print(json.dumps(timing))


if __name__ == "__main__":
    main()
