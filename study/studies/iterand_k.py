"""IteRand vs edge-popup across k on Conv6 / CIFAR-10, and IteRand's r ablation at k = 0.5.

IteRand's paper compares the two across width at one k (docs/published.md#iterand); this study
sweeps k instead, under IteRand's recipe for both, as the paper ran its edge-popup baseline: lr
0.3, Kaiming-uniform weights, raw-score ranking, scores U(+-sqrt(6/fan_in)) (edge-popup so set is
IteRand at r = 0, exactly). The ablation is the paper's Fig. 1 (r in {0, 0.01, 0.1, 1}, K_per
300). Smoke scale has 2 steps per epoch, so K_per shrinks to 2 there (about one re-draw per
epoch, as 300 of the ~352 steps of a CIFAR-10 epoch).
"""

from hiddenlab.study.registry import Study
from hiddenlab.study.spaces import Phase, Series
from hiddenlab.study.studies._recipes import K_FRACTIONS, trial

MODEL = "conv6"
RATES = [0.0, 0.01, 0.1, 1.0]
RERAND_EVERY = {"paper": 300, "smoke": 2}
# edge-popup as IteRand's paper ran it: IteRand's recipe and mask, no re-randomisation.
EP_AS_ITERAND = dict(method="edgepopup", init="kaiming_uniform", lr=0.3, score_abs=False,
                     score_init="kaiming_uniform_relu")


def phases(scale: str) -> list[Phase]:
    iterand = dict(method="iterand", rerand_every=RERAND_EVERY[scale])
    return [Phase("main", [
        Series("IteRand", trial(scale, MODEL, iterand), axes={"k": K_FRACTIONS}),
        Series("edge-popup", trial(scale, MODEL, EP_AS_ITERAND), axes={"k": K_FRACTIONS}),
        Series("IteRand r ablation", trial(scale, MODEL, iterand, k=0.5),
               axes={"rerand_rate": RATES}),
    ])]


STUDY = Study(
    name="iterand-k",
    title="IteRand vs edge-popup: test acc vs % of weights kept, Conv6 on CIFAR-10; r ablation "
          "{0, 0.01, 0.1, 1} at k = 50%",
    feeds=("iterand-k",),
    phases=phases,
    seeds={"smoke": 1, "paper": 3},
)
