"""A figure drawn from stand-in data (smoke scale: synthetic, digits) says so in its notes."""

import matplotlib

matplotlib.use("Agg")

from hiddenlab.analysis import build  # noqa: E402
from hiddenlab.analysis.synthetic import demo_results  # noqa: E402


def test_stand_in_data_is_noted_paper_data_is_not():
    df = demo_results(seeds=3)
    paper = build("ep-fig3", df)
    assert not any("stand-in data" in n for n in paper.notes)
    smoke = df.assign(dataset=df["dataset"].where(df["study"] != "ep-fig3", "synthetic"))
    r = build("ep-fig3", smoke)
    assert any(n.startswith("trained on synthetic (stand-in data)") for n in r.notes), r.notes



def test_real_data_names_its_data_set_and_generic_figures_name_none():
    df = demo_results(seeds=3)
    df = df[df["study"].isin(["real-data", "my-sweep"])]
    assert not any("stand-in" in n for n in build("real-data", df).notes)
    smoke = df.assign(dataset="synthetic")
    assert "trained on synthetic (stand-in data), not Fashion-MNIST: compare trends, not " \
        "numbers" in build("real-data", smoke).notes
    assert not any("stand-in" in n for n in build("study:my-sweep", smoke).notes)
