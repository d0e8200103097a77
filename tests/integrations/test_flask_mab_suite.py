"""Flask-MAB 3.0.4's own test suite, run against octobandit.integrations.flask_mab.

The suite is not vendored: its sdist is fetched at test time with pip (cached in
``.cache/flask-mab/`` at the repository's root, gitignored), its ``tests/`` extracted,
and only its imports rewritten:

* ``from flask_mab… import`` → ``from octobandit.integrations.flask_mab… import``;
* ``import flask_mab.storage`` → ``from octobandit.integrations import flask_mab``
  (the package imports its submodules, so ``flask_mab.storage.…`` still resolves);
* ``import flask_mab.bandits as bandits`` → ``from octobandit.integrations.flask_mab
  import bandits``;
* ``from mock import`` → ``from unittest.mock import`` (the ``mock`` backport is the
  standard library's ``unittest.mock`` since Python 3.3).

Then it runs in a subprocess with pytest, and every one of its tests must pass.
``EXCLUDED`` lists the tests that assert Flask-MAB's bugs (none at present).

Without network access the test is skipped, unless ``OCTOBANDIT_REQUIRE_SERVICES=1``:
then it fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("flask")

VERSION = "3.0.4"
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "flask-mab"
SDIST = CACHE / f"flask_mab-{VERSION}.tar.gz"

#: test id -> why it is not run (tests that assert Flask-MAB's bugs)
EXCLUDED: dict[str, str] = {}

#: every test of the suite (so that a test lost by a rewrite or a collection error shows)
EXPECTED = {
    "test_app.py::MABTestCase::test_concurrency",
    "test_app.py::MABTestCase::test_from_cookie_reward_decorated",
    "test_app.py::MABTestCase::test_new_session",
    "test_app.py::MABTestCase::test_repeating_session",
    "test_app.py::MABTestCase::test_routing",
    "test_app.py::MABTestCase::test_suggest_decorated",
    "test_app_factory.py::MABTestCase::test_concurrency",
    "test_app_factory.py::MABTestCase::test_from_cookie",
    "test_app_factory.py::MABTestCase::test_from_cookie_reward_decorated",
    "test_app_factory.py::MABTestCase::test_new_session",
    "test_app_factory.py::MABTestCase::test_repeating_session",
    "test_app_factory.py::MABTestCase::test_routing",
    "test_app_factory.py::MABTestCase::test_suggest_decorated",
    "test_bandits.py::AnnealingSoftmaxTest::test_bandit",
    "test_bandits.py::EpsilonGreedyTest::test_bandit",
    "test_bandits.py::SoftmaxTest::test_bandit",
    "test_bandits.py::ThompsonBanditTest::test_bandit",
    "test_blueprints.py::MABTestCase::test_improper_configuration",
    "test_blueprints.py::MABTestCase::test_proper_configuration",
    "test_corner_cases.py::MABCornerCases::test_no_storage",
    "test_request_flow.py::RequestFlowTest::test_pull_is_called",
    "test_request_flow.py::RequestFlowTest::test_reward_is_called",
    "test_request_flow.py::RequestFlowTest::test_values_persisted",
    "test_request_flow_stacked.py::RequestFlowTest::test_pull_is_called",
    "test_request_flow_stacked.py::RequestFlowTest::test_reward_is_called",
    "test_request_flow_stacked.py::RequestFlowTest::test_values_persisted",
}

PKG = "octobandit.integrations.flask_mab"
IMPORTS = [
    (r"^import flask_mab\.bandits as (\w+)$", "from " + PKG + r" import bandits as \1"),
    (r"^import flask_mab(\.\w+)?$", "from octobandit.integrations import flask_mab"),
    (r"^from flask_mab(\.\w+)? import", "from " + PKG + r"\1 import"),
    (r"^from mock import", "from unittest.mock import"),
]


def sdist() -> Path:
    """Flask-MAB's sdist, downloaded once into .cache/flask-mab/."""
    if SDIST.exists():
        return SDIST
    CACHE.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", f"flask-mab=={VERSION}"]
    cmd += ["--no-binary", ":all:", "--no-deps", "-d", str(CACHE), "-q"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 or not SDIST.exists():
        reason = f"cannot download flask-mab=={VERSION}: {done.stderr.strip()[-500:]}"
        if os.environ.get("OCTOBANDIT_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return SDIST


def rewrite(source: str) -> str:
    for pattern, replacement in IMPORTS:
        source = re.sub(pattern, replacement, source, flags=re.M)
    return source


def extract(tmp: Path) -> Path:
    """The suite's tests/ in ``tmp``, its imports rewritten (nothing else changes)."""
    prefix = f"flask_mab-{VERSION}/tests/"
    with tarfile.open(sdist()) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith(prefix):
                data = tar.extractfile(member)
                assert data is not None
                text = data.read().decode()
                out = tmp / "tests" / member.name[len(prefix) :]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(rewrite(text) if out.suffix == ".py" else text)
    (tmp / "pytest.ini").write_text("[pytest]\n")
    return tmp / "tests"


def test_the_rewrite_changes_only_imports() -> None:
    original = (
        "import flask_mab.storage\nimport flask_mab.bandits as bandits\n"
        "from flask_mab import BanditMiddleware\nfrom flask_mab.bandits import X\n"
        "from mock import Mock\nx = flask_mab.storage.JSONBanditStorage('a')\n"
    )
    assert rewrite(original).splitlines() == [
        "from octobandit.integrations import flask_mab",
        "from octobandit.integrations.flask_mab import bandits as bandits",
        "from octobandit.integrations.flask_mab import BanditMiddleware",
        "from octobandit.integrations.flask_mab.bandits import X",
        "from unittest.mock import Mock",
        "x = flask_mab.storage.JSONBanditStorage('a')",
    ]


def test_flask_mab_own_suite_passes(tmp_path: Path) -> None:
    tests = extract(tmp_path)
    report = tmp_path / "report.xml"
    cmd = [sys.executable, "-m", "pytest", str(tests), "-c", str(tmp_path / "pytest.ini")]
    cmd += ["-p", "no:cacheprovider", "-q", f"--junitxml={report}", "--timeout", "600"]
    for test_id in EXCLUDED:
        cmd += ["--deselect", f"{tests}/{test_id}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        module, cls = case.get("classname", "").rsplit(".", 1)
        test_id = f"{module.rsplit('.', 1)[-1]}.py::{cls}::{case.get('name')}"
        failed = any(child.tag in ("failure", "error") for child in case)
        skipped = any(child.tag == "skipped" for child in case)
        outcomes[test_id] = "failed" if failed else "skipped" if skipped else "passed"
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert set(outcomes) == EXPECTED - set(EXCLUDED), done.stdout[-3000:]
    assert set(outcomes.values()) == {"passed"}, outcomes
