"""Derive the Open Bandit Dataset fixture in tests/data/obd/ from obp 0.4.1's wheel.

The wheel of obp (the Open Bandit Pipeline) carries a 10,000-round sample of each part of
the Open Bandit Dataset (ZOZO, Inc.; CC BY 4.0): ``obp/dataset/obd/{random,bts}/{all,men,
women}/``. The fixture keeps campaign ``all`` of both logging policies, with only the columns
that octobandit.evaluation.obd reads (the index, timestamp, item_id, position, click,
propensity_score and user_feature_*; the 80 user-item affinity columns are dropped), the
rows and values unchanged, gzipped; item_context.csv is copied as it is.

    python bench/obd_fixture.py [--wheel PATH]   # default: $OCTOBANDIT_OBP_WHEEL, else
                                                 # /tmp/obpwheel/obp-0.4.1-py3-none-any.whl
    pip download obp==0.4.1 --no-deps -d /tmp/obpwheel   # to get the wheel

The output is byte-for-byte reproducible (gzip without a timestamp).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import os
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "obd"
DEFAULT_WHEEL = "/tmp/obpwheel/obp-0.4.1-py3-none-any.whl"
PARTS = (("random", "all"), ("bts", "all"))
KEEP = {"", "timestamp", "item_id", "position", "click", "propensity_score"}

ATTRIBUTION = """\
The files below this directory are derived from the Open Bandit Dataset,
(c) ZOZO, Inc., licensed under the Creative Commons Attribution 4.0 International
License (CC BY 4.0): https://creativecommons.org/licenses/by/4.0/

Source: the small sample of the Open Bandit Dataset shipped in the wheel of obp 0.4.1
(the Open Bandit Pipeline, https://github.com/st-tech/zr-obp), obp/dataset/obd/.
Dataset: https://research.zozo.com/data.html
Paper: Yuta Saito, Shunsuke Aihara, Megumi Matsutani, Yusuke Narita. "Open Bandit
Dataset and Pipeline: Towards Realistic and Reproducible Off-Policy Evaluation."
NeurIPS 2021 Datasets and Benchmarks Track.

Changes: only the campaign "all" of the logging policies "random" and "bts" is kept; in
all.csv.gz the user-item affinity columns are dropped (the index, timestamp, item_id,
position, click, propensity_score and user_feature_* columns, and every row, are kept
unchanged) and the file is gzipped; item_context.csv is unchanged. Regenerate with
bench/obd_fixture.py.
"""


def _slim(raw: bytes) -> bytes:
    rows = csv.reader(io.StringIO(raw.decode("utf-8")))
    header = next(rows)
    keep = [i for i, name in enumerate(header) if name in KEEP or name.startswith("user_feature")]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([header[i] for i in keep])
    for row in rows:
        writer.writerow([row[i] for i in keep])
    return out.getvalue().encode("utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", default=os.environ.get("OCTOBANDIT_OBP_WHEEL", DEFAULT_WHEEL))
    args = parser.parse_args()
    with zipfile.ZipFile(args.wheel) as wheel:
        for policy, campaign in PARTS:
            src = f"obp/dataset/obd/{policy}/{campaign}"
            dest = OUT / policy / campaign
            dest.mkdir(parents=True, exist_ok=True)
            slim = _slim(wheel.read(f"{src}/{campaign}.csv"))
            with (dest / f"{campaign}.csv.gz").open("wb") as f:
                f.write(gzip.compress(slim, compresslevel=9, mtime=0))
            (dest / "item_context.csv").write_bytes(wheel.read(f"{src}/item_context.csv"))
            print(f"wrote {dest.relative_to(ROOT)}")
    (OUT / "ATTRIBUTION.txt").write_text(ATTRIBUTION)


if __name__ == "__main__":
    main()
