"""Paper recipes (docs/recipes.md) as TrialConfig field dicts, and the smoke-scale data.

`paper` scale = the recipe as published (5 seeds). `smoke` scale = the same series and points
with tiny data (synthetic or digits), tiny widths and 2 epochs, so that every study runs in
about a minute on 2 CPU cores; schedule positions (restarts, warm-up, kept epochs) shrink with
the epochs.
"""

from __future__ import annotations

from typing import Any

Fields = dict[str, Any]

# Weight distributions of the edge-popup paper (docs/inits.md) by their figure names.
N_K, U_K = "kaiming_normal", "signed_constant"
N_X, U_X = "xavier_normal", "xavier_constant"
SCALED_N_K, SCALED_U_K = "scaled_kaiming_normal", "scaled_signed_constant"
# The edge-popup code's scaled form (std x 1/sqrt(1 - k), right only at k = 0.5): the paper's
# published "scaled" curves were made with it (docs/inits.md).
SCALED_N_K_CODE, SCALED_U_K_CODE = SCALED_N_K + "_code", SCALED_U_K + "_code"
KAIMING_UNIFORM = "kaiming_uniform"

K_FRACTIONS = [0.1, 0.3, 0.5, 0.7, 0.9]          # % of weights figure
SLOT_KS = [2, 4, 8, 16, 32, 64]                  # Slot Machines K axis
CONV_MODELS = ["conv2", "conv4", "conv6", "conv8"]
SLOT_MODELS = ["slot-conv2", "slot-conv4", "slot-conv6"]

# Each method trains with its own published recipe (its file in models/selection/, listed by
# `hiddenlab methods`, sourced in docs/recipes.md); a study gives only what its paper changes.

# --- edge-popup, CIFAR-10 and ImageNet --------------------------------------------------------------
EP_SELECT: Fields = dict(method="edgepopup")
EP_DENSE_SGD: Fields = dict(method="dense")
# The lottery-ticket Adam recipe (batch 60, no decay, constant, per-model lr): dense's recipe
# for optimizer adam.
EP_DENSE_ADAM: Fields = dict(method="dense", optimizer="adam")
# Zhou et al. as tuned by edge-popup: the supermask recipe (lr per model, no weight decay).
EP_ZHOU: Fields = dict(method="supermask")
# Zhou's sparsity is set by the constant mask-logit init (lower -> fewer weights kept); the
# figure's x is the realised fraction (`kept_fraction_paper`, Zhou's definition).
ZHOU_SCORE_CONSTS = [-2.0, -1.0, 0.0, 1.0, 2.0]
# ImageNet models: every method's recipe has its ImageNet form (edge-popup's largescale configs;
# Zhou: lr 400, no warm-up, no label smoothing).
EP_IMAGENET: Fields = {}
EP_IMAGENET_ZHOU: Fields = dict(method="supermask")

# --- Slot Machines -------------------------------------------------------------------------------
SLOT_EPOCHS = 200
# Learned baselines (paper): LeNet 200, CONV-2 200, CONV-4 330, CONV-6 330, VGG-19 320 epochs,
# lr 0.01 (reference code), the paper's SGDR schedule; they start from the distribution the slot
# values are drawn from (the reference's learned networks start from one random pick of them).
LEARNED_EPOCHS = {"lenet-300-100": 200, "slot-conv2": 200, "slot-conv4": 330, "slot-conv6": 330,
                  "vgg19": 320}
LEARNED_LR = 0.01
SM_LEARNED: Fields = dict(method="dense", init="slot-code", lr=LEARNED_LR, schedule="sgdr",
                          restarts=(25, 75))


def slot_data(model: str) -> Fields:
    """Slot Machines data: MNIST for LeNet (15% validation), CIFAR-10 otherwise (10%)."""
    if model == "lenet-300-100":
        return dict(dataset="mnist", val_size=9000)
    return dict(dataset="cifar10", val_size=5000)


# --- scales ----------------------------------------------------------------------------------------
SMOKE_EPOCHS = 2

# Smoke data: synthetic images big enough for the deepest model of the family.
SMOKE_DATA = {
    # edge-popup conv family (Conv8 pools 4 times: 16 px)
    "cifar": dict(dataset="synthetic", synthetic_shape=(3, 16, 16), synthetic_size=256,
                  num_workers=0),
    # Slot Machines CONV-6 (padding 0) needs >= 20 px
    "slot-cifar": dict(dataset="synthetic", synthetic_shape=(3, 24, 24), synthetic_size=256,
                       num_workers=0),
    # MNIST stand-in: the real, offline 8x8 digits
    "mnist": dict(dataset="digits", subset=512, num_workers=0),
    # ImageNet stand-in: small synthetic RGB images
    "imagenet": dict(dataset="synthetic", synthetic_shape=(3, 32, 32), synthetic_size=128,
                     num_workers=0),
}
SMOKE_WIDTH = {"cifar": 0.125, "slot-cifar": 0.125, "mnist": 0.25, "imagenet": 0.0625}


def smoke_epochs(paper_epochs: int, value: float) -> int:
    """An epoch position of the paper recipe (restart, start epoch) mapped onto smoke epochs."""
    return max(1, min(SMOKE_EPOCHS - 1, round(value * SMOKE_EPOCHS / paper_epochs))) \
        if SMOKE_EPOCHS > 1 else 1


def at_scale(scale: str, kind: str, recipe: Fields, width: float = 1.0) -> Fields:
    """`recipe` at `scale`: unchanged for paper; for smoke, smoke data of `kind`, widths
    multiplied by SMOKE_WIDTH[kind], SMOKE_EPOCHS epochs with schedule positions shrunk."""
    out = dict(recipe)
    if scale == "paper":
        out.setdefault("width_mult", float(width))
        return out
    paper_epochs = int(out.get("epochs", 100))
    out.update(SMOKE_DATA[kind])
    out["width_mult"] = float(width) * SMOKE_WIDTH[kind]
    out["epochs"] = SMOKE_EPOCHS
    out["eval_batch_size"] = 256
    if out.get("warmup_epochs"):
        out["warmup_epochs"] = 0.5
    if out.get("restarts"):
        out["restarts"] = tuple(sorted({smoke_epochs(paper_epochs, r) for r in out["restarts"]}))
    if out.get("milestones"):
        out["milestones"] = tuple(sorted({smoke_epochs(paper_epochs, m)
                                          for m in out["milestones"]}))
    return out


def data_kind(model: str) -> str:
    if model in ("fc", "lenet-300-100"):
        return "mnist"
    if model.startswith("slot-conv"):
        return "slot-cifar"
    if model.startswith(("resnet", "wide-resnet")):
        return "imagenet"
    return "cifar"


def paper_data(model: str) -> Fields:
    kind = data_kind(model)
    return {"mnist": dict(dataset="mnist"), "slot-cifar": dict(dataset="cifar10"),
            "cifar": dict(dataset="cifar10"), "imagenet": dict(dataset="imagenet")}[kind]


def trial(scale: str, model: str, recipe: Fields, width: float = 1.0,
          paper: Fields | None = None, **extra) -> Fields:
    """Fixed fields of a series for `model` at `scale`. Paper: the paper's data set plus
    `paper` (fields that only make sense on the real data, e.g. val_size)."""
    base = dict(recipe, model=model, **extra)
    if scale == "paper":
        base = {**paper_data(model), **base, **(paper or {})}
    return at_scale(scale, data_kind(model), base, width)
