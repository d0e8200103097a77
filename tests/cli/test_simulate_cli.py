"""``octobandit simulate``: output names, no silent overwrite, honest plot notes, labels."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from octobandit.cli import app

runner = CliRunner()

QUICK = ["--arms", "3", "--best", "0.7", "--gap", "0.3", "--horizon", "50", "--replications", "4"]


def simulate(*args: str) -> Any:
    return runner.invoke(app, ["simulate", *QUICK, *args], env={"COLUMNS": "1000"})


def test_the_given_name_is_kept_whole(tmp_path: Path) -> None:
    """``--out out/run0.1`` writes run0.1.csv and run0.1.json (not run0.csv)."""
    stem = tmp_path / "out" / "run0.1"
    r = simulate("--out", str(stem), "--no-plot")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in stem.parent.iterdir()) == ["run0.1.csv", "run0.1.json"]
    assert f"wrote {stem}.csv, {stem}.json" in r.output
    # a trailing output extension is the same stem
    r = simulate("--out", str(tmp_path / "b.csv"), "--no-plot")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "b.csv").is_file() and (tmp_path / "b.json").is_file()


def test_a_directory_is_not_a_name(tmp_path: Path) -> None:
    r = simulate("--out", str(tmp_path), "--no-plot")
    assert r.exit_code == 2 and "is a directory" in r.output
    assert list(tmp_path.iterdir()) == []


def test_existing_outputs_are_never_silently_overwritten(tmp_path: Path) -> None:
    stem = tmp_path / "run0.1"
    assert simulate("--out", str(stem), "--no-plot", "--seed", "1").exit_code == 0
    before = (tmp_path / "run0.1.csv").read_text()
    r = simulate("--out", str(stem), "--no-plot", "--seed", "2")
    assert r.exit_code == 1
    assert "refusing to overwrite" in r.output and "--force" in r.output
    assert str(tmp_path / "run0.1.csv") in r.output
    assert (tmp_path / "run0.1.csv").read_text() == before
    r = simulate("--out", str(stem), "--no-plot", "--seed", "2", "--force")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run0.1.csv").read_text() != before  # another seed, other numbers


def test_help_documents_the_output_rules() -> None:
    r = runner.invoke(app, ["simulate", "--help"], terminal_width=200, env={"COLUMNS": "200"})
    assert r.exit_code == 0
    assert "--force" in r.output and "overwrite" in r.output and "run0.1.csv" in r.output


def test_two_settings_of_one_policy_get_distinct_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ε = 0.1 and ε = 0.3 are told apart in the console, the CSV, the JSON and the legend."""
    import matplotlib.figure

    legends: list[str] = []
    save = matplotlib.figure.Figure.savefig

    def savefig(fig: Any, *args: Any, **kwargs: Any) -> Any:  # read the real legends
        for ax in fig.axes:
            if ax.get_legend() is not None:
                legends.extend(t.get_text() for t in ax.get_legend().get_texts())
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    stem = tmp_path / "eps"
    r = simulate(
        "-p", '{"type": "epsilon_greedy", "epsilon": 0.1}',
        "-p", '{"type": "epsilon_greedy", "epsilon": 0.3}',
        "-p", "thompson", "-p", "thompson",
        "--out", str(stem),
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    labels = [
        "epsilon_greedy(epsilon=0.1)", "epsilon_greedy(epsilon=0.3)", "thompson", "thompson#2"
    ]  # fmt: skip
    console = [line.split(" regret at")[0].strip() for line in r.output.splitlines()]
    console = [line for line in console if line and not line.startswith("wrote")]
    assert console == labels
    with open(f"{stem}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(dict.fromkeys(row["policy"] for row in rows)) == labels
    assert [p["label"] for p in json.loads(Path(f"{stem}.json").read_text())] == labels
    assert Path(f"{stem}.png").stat().st_size > 0
    assert legends == [f"{label} (R = 4)" for label in labels]


def test_a_label_with_a_comma_is_quoted_in_the_csv(tmp_path: Path) -> None:
    stem = tmp_path / "decay"
    spec = {"type": "epsilon_greedy", "epsilon": 0.3, "decay": "inverse", "rate": 0.1}
    r = simulate("-p", json.dumps(spec), "--out", str(stem), "--no-plot")
    assert r.exit_code == 0, r.output
    with open(f"{stem}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["policy"] for row in rows} == {
        "epsilon_greedy(epsilon=0.3, decay=inverse, rate=0.1)"
    }
    assert all(len(row) == len(rows[0]) for row in rows)


BLOCK_MATPLOTLIB = textwrap.dedent(
    """
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "matplotlib" or name.startswith("matplotlib."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    from octobandit.cli import main

    sys.argv = ["octobandit"] + sys.argv[1:]
    main()
    """
)


def test_without_matplotlib_the_png_is_skipped_and_not_claimed(tmp_path: Path) -> None:
    stem = tmp_path / "noplot"
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_MATPLOTLIB, "simulate", *QUICK, "--out", str(stem)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert not Path(f"{stem}.png").exists()
    assert ".png" not in proc.stdout
    assert f"wrote {stem}.csv, {stem}.json" in proc.stdout
    assert "skipped the PNG plot" in proc.stderr and "octobandit[plot]" in proc.stderr


def test_delayed_feedback_options_reach_the_simulation(tmp_path: Path) -> None:
    """--delay-mean, --feedback and --window are in the JSON, and the counts obey the
    window: counted + pending = chosen = horizon per replication, and every decision is
    counted when its window closes (the last W - 1 = 9 are pending)."""
    stem = tmp_path / "window"
    r = simulate(
        "--delay-mean", "20", "--feedback", "window", "--window", "10",
        "--out", str(stem), "--no-plot",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    (out,) = json.loads(Path(f"{stem}.json").read_text())
    assert out["environment"]["delay"] == {"type": "exponential", "mean": 20.0}
    assert out["feedback"] == {"mode": "window", "window": 10, "default": 0.0}
    assert sum(out["mean_counted"]) + sum(out["mean_pending"]) == pytest.approx(50)
    assert sum(out["mean_pending"]) == pytest.approx(9)
    assert sum(out["mean_pulls"]) == pytest.approx(50)


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["--feedback", "later"], "--feedback"),
        (["--feedback", "window"], "--window"),
        (["--window", "5"], "--window"),
        (["--feedback", "window_eager"], "--window"),
        (["--env", "gaussian", "--delay-mean", "5"], "--delay-mean"),
        (["--delay-mean", "0"], "--delay-mean"),
        (["-p", "exp3", "--feedback", "positives_only"], "stateless"),
    ],
)
def test_bad_delayed_feedback_options_are_refused(
    tmp_path: Path, args: list[str], hint: str
) -> None:
    r = simulate(*args, "--out", str(tmp_path / "x"), "--no-plot")
    assert r.exit_code == 2 and hint in r.output
    assert list(tmp_path.iterdir()) == []
