"""The Open Bandit Dataset loader, the action-distribution file, and agreement with obp 0.4.1.

The fixture tests/data/obd/ is derived from the sample in obp's wheel by
bench/obd_fixture.py; obp's numbers in tests/data/obp_reference.json were recorded by
bench/obp_reference.py in an isolated venv (bench/obp-venv) on that same sample.
"""

from __future__ import annotations

import ast
import gzip
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import octobandit.evaluation.obd as obd_module
from octobandit.evaluation import (
    InverseProbabilityWeighting,
    SelfNormalizedInverseProbabilityWeighting,
)
from octobandit.evaluation.obd import (
    ObdError,
    OpenBanditData,
    evaluate_obd,
    load_obd,
    read_action_dist,
)

DATA = Path(__file__).resolve().parents[1] / "data"
OBD = DATA / "obd"
REFERENCE = json.loads((DATA / "obp_reference.json").read_text())
DIST_FILE = DATA / "obd_bts_action_dist.json"


@pytest.fixture(scope="module")
def random_all() -> OpenBanditData:
    return load_obd(OBD / "random" / "all")


@pytest.fixture(scope="module")
def bts_all() -> OpenBanditData:
    return load_obd(OBD / "bts" / "all")


@pytest.fixture(scope="module")
def ours(random_all: OpenBanditData) -> dict[str, Any]:
    dist = read_action_dist(DIST_FILE, n_actions=random_all.n_actions, len_list=random_all.len_list)
    return evaluate_obd(random_all, dist)["estimates"]


# --- the loader -----------------------------------------------------------------------


@pytest.mark.parametrize("part", ["random_all", "bts_all"])
def test_shapes_and_ranges(part: str, request: pytest.FixtureRequest) -> None:
    data: OpenBanditData = request.getfixturevalue(part)
    n = data.n_rounds
    assert (n, data.n_actions, data.len_list) == (10_000, 80, 3)
    for name in ("action", "position", "reward", "pscore", "timestamp"):
        assert getattr(data, name).shape == (n,), name
    assert data.context.shape[0] == n
    assert data.action_context.shape == (80, 5)  # item_id and 3 item features coded, then f0
    assert set(np.unique(data.position).tolist()) == {0, 1, 2}
    assert set(np.unique(data.reward).tolist()) == {0.0, 1.0}
    assert ((data.pscore > 0) & (data.pscore <= 1)).all()
    assert ((data.action >= 0) & (data.action < 80)).all()
    assert (np.diff(data.timestamp) >= np.timedelta64(0, "us")).all()
    # one-hot user features without each feature's first value: every row has one 1 per
    # feature at most, and as many distinct rows as the features allow
    assert set(np.unique(data.context).tolist()) <= {0.0, 1.0}
    assert data.context.sum(axis=1).max() <= 4
    # item_id's code is the action itself
    assert np.array_equal(data.action_context[:, 0], np.arange(80))


def test_random_logger_is_uniform_and_bts_is_not(
    random_all: OpenBanditData, bts_all: OpenBanditData
) -> None:
    assert np.all(random_all.pscore == 1 / 80)  # uniform over 80 items (per position)
    assert np.unique(bts_all.pscore).size > 100


def test_the_arrays_are_those_obp_builds(random_all: OpenBanditData) -> None:
    """Shapes and the mean reward recorded from obp's OpenBanditDataset on the same sample."""
    assert random_all.n_rounds == REFERENCE["n_rounds"]
    assert random_all.n_actions == REFERENCE["n_actions"]
    assert random_all.len_list == REFERENCE["len_list"]
    assert list(random_all.context.shape) == REFERENCE["context_shape"]
    assert list(random_all.action_context.shape) == REFERENCE["action_context_shape"]
    assert random_all.reward.mean() == REFERENCE["reward_mean"]


def test_arrays_view(random_all: OpenBanditData) -> None:
    arrays = random_all.arrays()
    assert set(arrays) == {"reward", "action", "position", "pscore", "context"}
    assert arrays["reward"] is random_all.reward


def _plain_copy(tmp_path: Path, item_context_up: bool) -> Path:
    """The fixture's random/all as an uncompressed CSV, item_context here or one level up."""
    part = tmp_path / "random" / "all"
    part.mkdir(parents=True)
    (part / "all.csv").write_bytes(gzip.decompress((OBD / "random/all/all.csv.gz").read_bytes()))
    items = part.parent if item_context_up else part
    shutil.copy(OBD / "random/all/item_context.csv", items / "item_context.csv")
    return part


@pytest.mark.parametrize("item_context_up", [False, True])
def test_plain_csv_reads_the_same(
    tmp_path: Path, item_context_up: bool, random_all: OpenBanditData
) -> None:
    data = load_obd(_plain_copy(tmp_path, item_context_up))
    for name in ("action", "position", "reward", "pscore", "context", "action_context"):
        assert np.array_equal(getattr(data, name), getattr(random_all, name)), name


def test_rows_are_sorted_by_time(tmp_path: Path, random_all: OpenBanditData) -> None:
    part = _plain_copy(tmp_path, False)
    lines = (part / "all.csv").read_text().splitlines()
    (part / "all.csv").write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    data = load_obd(part)
    assert (np.diff(data.timestamp) >= np.timedelta64(0, "us")).all()
    # the same rounds: only rows at the same time may come in another order
    assert np.array_equal(data.timestamp, random_all.timestamp)
    key = np.lexsort((data.action, data.position, data.reward, data.timestamp))
    ref = np.lexsort(
        (random_all.action, random_all.position, random_all.reward, random_all.timestamp)
    )
    assert np.array_equal(data.action[key], random_all.action[ref])
    assert np.array_equal(data.context[key], random_all.context[ref])


def test_mixed_time_offsets_sort_by_time(tmp_path: Path) -> None:
    rows = [
        "0,2019-11-24 10:00:00+09:00,1,1,0,0.0125,a",  # 01:00 UTC
        "1,2019-11-24 02:00:00+00:00,2,1,0,0.0125,b",  # 02:00 UTC
        "2,2019-11-24 00:30:00+00:00,3,1,1,0.0125,a",  # 00:30 UTC
    ]
    part = _write_log(tmp_path / "random" / "all", HEADER + "\n".join(rows) + "\n")
    data = load_obd(part)
    assert data.action.tolist() == [3, 1, 2]


def _write_log(part: Path, text: str) -> Path:
    part.mkdir(parents=True, exist_ok=True)
    (part / "all.csv").write_text(text)
    shutil.copy(OBD / "random/all/item_context.csv", part / "item_context.csv")
    return part


HEADER = ",timestamp,item_id,position,click,propensity_score,user_feature_0\n"
ROW = "0,2019-11-24 00:00:34.762830+00:00,14,3,0,0.0125,a\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        (HEADER, "no rows"),
        (
            HEADER.replace(",click", "") + ROW.replace(",0,0.0125", ",0.0125"),
            "column 'click' is missing",
        ),
        (
            HEADER + ROW.replace(",0,0.0125", ",yes,0.0125"),
            "'click', row 1: 'yes' is not a number",
        ),
        (HEADER + ROW.replace("0.0125", "0"), "'propensity_score': 0.0 is not in (0, 1]"),
        (HEADER + ROW.replace("0.0125", "1.5"), "'propensity_score': 1.5 is not in (0, 1]"),
        (HEADER + ROW.replace(",14,", ",1.5,"), "'item_id', row 1: '1.5' is not an integer"),
        (HEADER + ROW.replace(",14,", ",80,"), "item_id 80 but item_context.csv has only 80 items"),
        (HEADER + ROW.replace(",a\n", ",a,extra\n"), "row 1 has 8 fields but the header has 7"),
        (HEADER + ROW.replace("2019-11-24", "yesterday"), "'timestamp', row 1"),
        (HEADER.replace(",user_feature_0", ",age") + ROW, "no user_feature_* column"),
    ],
)
def test_bad_log_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    part = _write_log(tmp_path / "random" / "all", text)
    with pytest.raises(ObdError, match=r"all\.csv") as info:
        load_obd(part)
    assert message in str(info.value)


def test_bad_directories(tmp_path: Path) -> None:
    with pytest.raises(ObdError, match="not a directory"):
        load_obd(tmp_path / "nowhere")
    empty = tmp_path / "random" / "all"
    empty.mkdir(parents=True)
    with pytest.raises(ObdError, match=r"expected the log all\.csv .* found none"):
        load_obd(empty)
    (empty / "all.csv").write_text(HEADER + ROW)
    with pytest.raises(ObdError, match=r"item_context\.csv \(or \.csv\.gz\) is missing"):
        load_obd(empty)
    (empty / "item_context.csv").write_text(",item_id,item_feature_0\n0,1,0.5\n0,1,0.5\n")
    with pytest.raises(ObdError, match=r"item_id must be 0\.\.1, each once"):
        load_obd(empty)
    (empty / "all.csv.gz").write_bytes(b"not gzip")
    (empty / "all.csv").unlink()
    with pytest.raises(ObdError, match="cannot be read as a"):
        load_obd(empty)


def test_the_loader_needs_neither_pandas_nor_obp() -> None:
    tree = ast.parse(Path(obd_module.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not imported & {"pandas", "obp", "sklearn", "scipy"}


# --- the action-distribution file -----------------------------------------------------


def test_read_action_dist_shapes(tmp_path: Path) -> None:
    dist = read_action_dist(DIST_FILE, n_actions=80, len_list=3)
    assert dist.shape == (80, 3)
    np.testing.assert_allclose(dist.sum(axis=0), 1.0, rtol=0, atol=1e-9)
    per_round = tmp_path / "per_round.json"
    per_round.write_text(json.dumps({"action_dist": [[[0.5], [0.5]], [[1.0], [0.0]]]}))
    out = read_action_dist(per_round, n_rounds=2, n_actions=2, len_list=1)
    assert out.shape == (2, 2, 1)


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("{", {}, "not valid JSON"),
        ("[[1.0]]", {}, '{"action_dist": [...]}'),
        ('{"dist": [[1.0]]}', {}, '{"action_dist": [...]}'),
        ('{"action_dist": [[0.5, 0.5], [0.5]]}', {}, "ragged lists or non-numbers"),
        ('{"action_dist": [["a"], ["b"]]}', {}, "ragged lists or non-numbers"),
        ('{"action_dist": [0.5, 0.5]}', {}, "got shape (2,)"),
        ('{"action_dist": [[[[1.0]]]]}', {}, "got shape (1, 1, 1, 1)"),
        ('{"action_dist": []}', {}, "got shape (0,)"),
        ('{"action_dist": [[true], [false]]}', {}, "got shape (2, 1)"),
        ('{"action_dist": [[0.5], [0.5]]}', {"n_actions": 3}, "has 2 actions but the log has 3"),
        ('{"action_dist": [[0.5], [0.5]]}', {"len_list": 3}, "1 positions but the log has 3"),
        ('{"action_dist": [[[1.0]]]}', {"n_rounds": 5}, "1 rounds but the log has 5"),
        ('{"action_dist": [[NaN], [1.0]]}', {}, "not a finite number"),
        ('{"action_dist": [[1.5], [-0.5]]}', {}, "action_dist[1, 0] = -0.5 is negative"),
        ('{"action_dist": [[0.5, 1.0], [0.4, 0.0]]}', {}, "action_dist[:, 0] sums to 0.9"),
        ('{"action_dist": [[[1.0], [0.0]], [[0.3], [0.3]]]}', {}, "action_dist[1, :, 0] sums"),
    ],
)
def test_bad_action_dist_file(
    tmp_path: Path, content: str, kwargs: dict[str, int], message: str
) -> None:
    path = tmp_path / "dist.json"
    path.write_text(content)
    with pytest.raises(ObdError, match=r"dist\.json") as info:
        read_action_dist(path, **kwargs)
    assert message in str(info.value)


def test_missing_action_dist_file(tmp_path: Path) -> None:
    with pytest.raises(ObdError, match="cannot be read"):
        read_action_dist(tmp_path / "absent.json")


def test_evaluate_obd_rejects_a_wrong_shape(random_all: OpenBanditData) -> None:
    with pytest.raises(ObdError, match=r"expected \(K, L\) = \(80, 3\)"):
        evaluate_obd(random_all, np.full((80, 2), 1 / 80))


# --- agreement with obp 0.4.1 -----------------------------------------------------------


def test_ips_and_snips_equal_obps(random_all: OpenBanditData) -> None:
    """IPS and SNIPS are exact functions of the arrays: equal to obp's to 1e-9 relative."""
    dist = read_action_dist(DIST_FILE)
    pi = np.broadcast_to(dist, (random_all.n_rounds, *dist.shape))
    arrays = {k: v for k, v in random_all.arrays().items() if k != "context"}
    for estimator in (
        InverseProbabilityWeighting(),
        SelfNormalizedInverseProbabilityWeighting(),
    ):
        value = estimator.estimate_policy_value(**arrays, action_dist=pi)
        expected = REFERENCE["estimates"][estimator.name]["value"]
        assert value == pytest.approx(expected, rel=1e-9, abs=0), estimator.name


def test_evaluate_obd_agrees_with_obp(ours: dict[str, Any]) -> None:
    """IPS and SNIPS to 1e-9; DM and DR, through a reward model fitted with the same
    settings (logistic regression, 3-fold cross-fitting, seed 12345), within 1%."""
    assert set(ours) == {"ipw", "snipw", "dm", "dr"}
    for name, rel in (("ipw", 1e-9), ("snipw", 1e-9), ("dm", 0.01), ("dr", 0.01)):
        expected = REFERENCE["estimates"][name]["value"]
        assert ours[name]["value"] == pytest.approx(expected, rel=rel, abs=0), name


def test_intervals_agree_with_obps_within_bootstrap_error(ours: dict[str, Any]) -> None:
    """The two bootstraps draw different resamples, so their bounds differ by Monte Carlo
    error only. With B resamples the q-quantile's sd is sqrt(q(1-q)/B) / f(x_q); for a
    normal sampling distribution of sd s, f at the 2.5% quantile is phi(1.96)/s, so the sd
    is 0.085 s for B = 1000, and the difference of two such bounds has sd 0.12 s. Allowed:
    5 of those sd (0.6 s), with s estimated from obp's interval as its width / 3.92."""
    for name in ("ipw", "snipw", "dm", "dr"):
        lo, hi = REFERENCE["estimates"][name]["ci95"]
        s = (hi - lo) / 3.92
        mine = ours[name]["ci95"]
        assert mine[0] < ours[name]["value"] < mine[1], name
        assert abs(mine[0] - lo) < 0.6 * s, name
        assert abs(mine[1] - hi) < 0.6 * s, name


def test_per_round_action_dist_gives_the_same(
    random_all: OpenBanditData, ours: dict[str, Any]
) -> None:
    dist = read_action_dist(DIST_FILE)
    full = np.broadcast_to(dist, (random_all.n_rounds, *dist.shape))
    again = evaluate_obd(random_all, full)["estimates"]
    assert again == ours


def test_evaluate_obd_needs_no_scikit_learn(
    random_all: OpenBanditData, ours: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(sys.modules):
        if name == "sklearn" or name.startswith("sklearn."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    again = evaluate_obd(random_all, read_action_dist(DIST_FILE))["estimates"]
    assert again == ours
