"""A figure drawn from stand-in data (smoke scale: synthetic, digits) says so in its notes."""

import matplotlib

matplotlib.use("Agg")

from hiddenlab.analysis import build  # noqa: E402
from hiddenlab.analysis.synthetic import demo_results  # noqa: E402


def test_stand_in_data_is_noted_paper_data_is_not():
    df = demo_results(seeds=2)
    paper = build("ep-fig3", df)
    assert not any("stand-in data" in n for n in paper.notes)
    smoke = df.assign(dataset=df["dataset"].where(df["study"] != "ep-fig3", "synthetic"))
    r = build("ep-fig3", smoke)
    assert any(n.startswith("trained on synthetic (stand-in data)") for n in r.notes), r.notes
