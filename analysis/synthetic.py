"""Synthetic results in the one `results.parquet` schema, made by the exporter's own row builder
(`hiddenlab.study.export`), for tests, demos and trying the figures in a notebook before any
training has run. Nothing here is a measurement.

`trial_record` is one trial as the study package records it: a `TrialRecord` whose config is
`TrialConfig(...).to_dict()` plus the study's bookkeeping (`run_id, study, scale, phase, series,
parent_run_id`) and whose results are the per-epoch metric dicts exactly as `study/trainer.py`
reports them. `results_frame` turns records into rows with `export.table`; `demo_records` /
`demo_results` build every study with paper-like numbers, several seeds and a few trials that did
not finish; `write_demo_storage` writes them as the study package does, with `selection.json`
artifacts.
"""

from __future__ import annotations

import functools
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from hiddenlab.config import TrialConfig
from hiddenlab.study import export
from hiddenlab.study.export import TrialRecord
from hiddenlab.study.trainer import lr_factor

from .archs import analytic_params

IMAGENET_PARAMS = {"resnet18": 11.68e6, "resnet34": 21.78e6, "resnet50": 25.5e6,
                   "resnet101": 44.5e6, "wide-resnet50-2": 68.8e6}
DIVERGED = "TrialDiverged: loss is nan at epoch 2, step 17"


@functools.lru_cache(maxsize=None)
def _params(model: str, width_mult: float, depth=None) -> int:
    if model in IMAGENET_PARAMS:
        return int(IMAGENET_PARAMS[model])
    name = model if depth is None else f"{model.rstrip('0123456789')}{depth}"
    a = analytic_params(name, width_mult=width_mult)
    return int(a["total"]) if a else 1_000_000


def _layers(model: str) -> list[str]:
    if model.startswith(("conv", "slot-conv")):
        d = int(model.rsplit("conv", 1)[1] or 4)
        return [f"conv{i + 1}" for i in range(d)] + ["fc1", "fc2", "fc3"]
    if model in ("lenet-300-100", "fc"):
        return ["fc1", "fc2", "fc3"]
    return ["conv1", "layer1.0.conv1", "layer2.0.conv2", "layer3.0.conv2", "layer4.2.conv3", "fc"]


def _val_curve(acc: float, best_acc: float | None, epochs: int) -> list[float]:
    """Validation accuracy per epoch: rising to the last epoch, or peaking one epoch earlier
    when the best-validation network is another than the last (`best_acc` differs from acc)."""
    vals = [acc * e / epochs - 0.005 for e in range(1, epochs + 1)]
    if best_acc is not None and best_acc != acc and epochs >= 2:
        vals[-2] = vals[-1] + 0.01
    return vals


def epoch_metrics(cfg: TrialConfig, *, acc: float, best_acc: float | None, n: int,
                  kept: float, kept_paper: float | None, hostname: str,
                  epoch_time_s: float, final: bool) -> list[dict]:
    """The per-epoch dicts `study/trainer.py` reports for `n` epochs of `cfg` (plus the `hostname`
    and `wall_time_s` the reporter adds), the test set on the last epoch when `final`."""
    selects = cfg.method_spec.selects
    params = _params(cfg.model, cfg.width_mult, cfg.depth)
    layers = _layers(cfg.model if cfg.depth is None else f"{cfg.model}{cfg.depth}")
    vals = _val_curve(acc, best_acc, cfg.epochs)
    churn = (1 - kept) if kept < 1 else 0.5  # slot machines keep every connection, swap values
    out, best_epoch = [], 0
    for e in range(1, n + 1):
        frac = e / cfg.epochs
        if best_epoch == 0 or vals[e - 1] > vals[best_epoch - 1]:
            best_epoch = e
        m = {"epoch": e, "train_loss": 2.0 * (1.1 - frac), "train_acc": acc * frac,
             "val_loss": 2.0 * (1.15 - frac), "val_acc": vals[e - 1],
             "lr": cfg.lr * lr_factor(cfg, e - 1), "params": params}
        if selects:
            flip = 0.2 * churn * math.exp(-3 * frac)
            m["flip_rate"] = flip
            m["flip_rate_layers"] = {name: flip * (1.5 - i / len(layers))
                                     for i, name in enumerate(layers)}
        else:
            m["flip_rate"] = float("nan")
        m["kept_fraction"] = kept
        m["subnet_params"] = int(round(kept * params))
        if kept_paper is not None:
            m["kept_fraction_paper"] = kept_paper
        if final and e == cfg.epochs:
            best_test = acc if best_epoch == cfg.epochs else best_acc
            m.update(test_loss=1.0 - acc, test_acc=acc, best_val_test_acc=best_test,
                     best_val_test_loss=1.0 - best_test, done=True)
        m.update(best_val_epoch=best_epoch, best_val_acc=vals[best_epoch - 1],
                 epoch_time_s=epoch_time_s, wall_time_s=epoch_time_s * e + 5.0,
                 eval_mode=cfg.eval_label, hostname=hostname)
        out.append(m)
    return out


def trial_record(study: str, *, acc: float, seed: int = 0, status: str = "TERMINATED",
                 epochs_done: int | None = None, best_acc: float | None = None,
                 kept_fraction: float | None = None, kept_fraction_paper: float | None = None,
                 hostname: str = "gpu-node-1", epoch_time_s: float = 20.0, scale: str = "paper",
                 phase: str = "main", series: str | None = None,
                 parent_run_id: str | None = None, **fields) -> TrialRecord:
    """One trial of `study` whose last-epoch test accuracy is `acc` (a fraction) and whose
    best-validation network scores `best_acc` (default: the last network is the best).

    `fields` are TrialConfig fields (validated: recipe fields the trial does not give take the
    method's recipe); `epochs` defaults to 4. Zhou's realised fractions default to about half
    (`kept_fraction`) and a little more by the unweighted layer mean (`kept_fraction_paper`).
    ERROR, RUNNING and STOPPED trials report `epochs_done` epochs and no test set; PENDING none.
    """
    fields.setdefault("epochs", 4)
    cfg = TrialConfig(seed=seed, **fields)
    zhou = cfg.method == "supermask"
    kept = kept_fraction if kept_fraction is not None else (0.48 if zhou else cfg.keep)
    kept_paper = kept_fraction_paper if kept_fraction_paper is not None else \
        (min(1.0, kept + 0.02) if zhou else None)
    n = cfg.epochs if epochs_done is None else epochs_done
    results = [] if status == "PENDING" else epoch_metrics(
        cfg, acc=float(np.clip(acc, 0, 1)), best_acc=best_acc, n=n, kept=kept,
        kept_paper=kept_paper, hostname=hostname, epoch_time_s=epoch_time_s,
        final=status == "TERMINATED")
    run_id = cfg.run_id()
    config = {**cfg.to_dict(), "run_id": run_id, "study": study, "scale": scale, "phase": phase,
              "series": series or cfg.method, "parent_run_id": parent_run_id}
    return TrialRecord(run_id=run_id, config=config, status=status,
                       experiment=f"{study}-{scale}", trial_id=run_id[-8:],
                       error=DIVERGED if status == "ERROR" else None, fatal=status == "ERROR",
                       results=results, last_seen=float(len(results)))


def results_frame(records: Iterable[TrialRecord]) -> pd.DataFrame:
    """The rows of `results.parquet` for `records` (any studies), built by `export.table`."""
    tables = [export.table(study, recs).to_pandas() for study, recs in by_study(records).items()]
    if not tables:
        return pd.DataFrame(columns=["study", "run_id", "status", "epoch"])
    return pd.concat(tables, ignore_index=True, sort=False)


def by_study(records: Iterable[TrialRecord]) -> dict[str, dict[str, TrialRecord]]:
    """{study: {run_id: record}}, refusing two records of one run id in one study (the exporter
    keeps one record per run id; a test that made two would check half of what it built)."""
    out: dict[str, dict[str, TrialRecord]] = defaultdict(dict)
    for rec in records:
        study = rec.config["study"]
        if rec.run_id in out[study]:
            raise ValueError(f"two synthetic trials of {study} share run id {rec.run_id}")
        out[study][rec.run_id] = rec
    return dict(out)


# --- the demo studies ----------------------------------------------------------------------------

_CIFAR_BASE = {"conv2": 0.655, "conv4": 0.745, "conv6": 0.785, "conv8": 0.80}
_INIT_BONUS = {"kaiming_normal": 0.0, "signed_constant": 0.015, "scaled_kaiming_normal": 0.002,
               "scaled_signed_constant": 0.016, "xavier_normal": -0.008,
               "xavier_constant": 0.004, "kaiming_uniform": -0.004}
K_GRID = (0.1, 0.3, 0.5, 0.7, 0.9)
USER_STUDY = "my-sweep"


def _ep(base, k, init):
    return base - 0.9 * (k - 0.5) ** 2 - (0.06 if k <= 0.1 else 0) + _INIT_BONUS.get(init, 0)


def _code_penalty(k: float, per_log: float) -> float:
    """Accuracy lost by the reference code's scaled init (std x 1/sqrt(1-k)) against the correct
    one (x 1/sqrt(k)): grows with |log| of their ratio sqrt(k/(1-k)); none at k = 50%."""
    return per_log * abs(0.5 * math.log(k / (1 - k)))


def demo_records(seeds: int = 3, noise: float = 0.004, rng_seed: int = 0) -> list[TrialRecord]:
    """Every built-in study and one user study (`my-sweep`) with paper-like numbers. Deliberate
    gaps: ep-fig3 Conv8 N_k k=10% has one ERROR seed (its point has n = seeds - 1), sm-k CONV-4
    K=64 one RUNNING seed, sm-gs-ps one PENDING trial, my-sweep three trials STOPPED by the
    scheduler. Every trial's best-validation network differs a little from its last one.
    Deterministic, so built once per process (treat the records as read-only)."""
    return list(_demo_records(seeds, noise, rng_seed))


@functools.lru_cache(maxsize=2)
def _demo_records(seeds: int, noise: float, rng_seed: int) -> tuple[TrialRecord, ...]:
    rng = np.random.default_rng(rng_seed)
    out: list[TrialRecord] = []

    def add(study, acc, seed, **kw):
        a = float(acc + rng.normal(0, noise))
        kw.setdefault("best_acc", a + abs(float(rng.normal(0, 0.006))) + 0.001)
        rec = trial_record(study, acc=a, seed=seed, **kw)
        out.append(rec)
        return rec

    for s in range(seeds):
        host = f"gpu-node-{1 + s % 2}"
        _edge_popup_cifar(add, s, seeds, host, rng)
        if s < 2:  # ImageNet: 2 seeds
            _edge_popup_imagenet(add, s, rng)
            _quickstart(add, s)
        _slot_machines(add, s, seeds, host)
        _scaling_laws(add, s, host)
        _real_data(add, s, host)
        _followups(add, s, host)
        _user_study(add, s, host)
    return tuple(out)


def _edge_popup_cifar(add, s, seeds, host, rng):
    cifar = dict(dataset="cifar10", hostname=host)
    for model, base in _CIFAR_BASE.items():  # Fig 3
        for k in K_GRID:
            for init, name in (("kaiming_normal", "N_k"), ("signed_constant", "U_k")):
                bad = model == "conv8" and k == 0.1 and init == "kaiming_normal" and s == seeds - 1
                add("ep-fig3", _ep(base, k, init), s, method="edgepopup", model=model, k=k,
                    init=init, status="ERROR" if bad else "TERMINATED",
                    epochs_done=2 if bad else None, series=f"edge-popup {name}", **cifar)
        add("ep-fig3", base - 0.015, s, method="dense", model=model, optimizer="adam",
            series="learned (Adam)", **cifar)
        add("ep-fig3", base - 0.03, s, method="dense", model=model, series="learned (SGD)",
            **cifar)
    for model in ("conv4", "conv6"):  # Fig 4
        for w in (0.25, 0.5, 1.0, 2.0):
            for init in ("kaiming_normal", "signed_constant"):
                add("ep-fig4", _ep(_CIFAR_BASE[model], 0.5, init) + 0.045 * np.log2(w), s,
                    method="edgepopup", model=model, k=0.5, width_mult=w, init=init, **cifar)
            add("ep-fig4", _CIFAR_BASE[model] - 0.02 + 0.022 * np.log2(w), s, method="dense",
                model=model, width_mult=w, **cifar)
    p1 = _params("conv4", 1.0)  # Fig 5: k x params(width) constant
    for k1 in (0.3, 0.5, 0.7):
        for w in (1.0, 1.5, 2.0, 3.0):
            k = min(1.0, k1 * p1 / _params("conv4", w))
            acc = 0.745 - 0.5 * (k1 - 0.6) ** 2 + 0.035 * np.log2(w) - 0.3 * (0.5 - k) ** 2
            add("ep-fig5", acc, s, method="edgepopup", model="conv4", k=round(k, 6),
                width_mult=w, init="signed_constant", **cifar)
    for model in ("conv4", "conv6"):  # Fig 6
        for init in ("kaiming_normal", "signed_constant", "xavier_normal", "xavier_constant"):
            for k in K_GRID:
                add("ep-fig6", _ep(_CIFAR_BASE[model], k, init), s, method="edgepopup",
                    model=model, k=k, init=init, **cifar)
            for c in (-1.0, 0.0, 1.0):
                kept = float(np.clip(0.5 + 0.2 * c + rng.normal(0, 0.02), 0.05, 0.95))
                add("ep-fig6", _ep(_CIFAR_BASE[model], kept, init) - 0.07, s,
                    method="supermask", model=model, score_init="constant", score_const=c,
                    init=init, kept_fraction=kept,
                    kept_fraction_paper=float(np.clip(kept + 0.03 + rng.normal(0, 0.01), 0, 1)),
                    **cifar)
        add("ep-fig6", _CIFAR_BASE[model] - 0.015, s, method="dense", model=model,
            optimizer="adam", **cifar)
    for model in ("conv4", "conv6"):  # Fig 7: both scaled forms
        for init in ("kaiming_normal", "signed_constant", "scaled_kaiming_normal",
                     "scaled_signed_constant", "xavier_normal", "kaiming_uniform"):
            for k in K_GRID:
                a = _ep(_CIFAR_BASE[model], k, init)
                add("ep-fig7", a, s, method="edgepopup", model=model, k=k, init=init, **cifar)
                if init.startswith("scaled_"):
                    add("ep-fig7", a - _code_penalty(k, 0.01), s, method="edgepopup",
                        model=model, k=k, init=init + "_code", **cifar)


def _edge_popup_imagenet(add, s, rng):
    imnet = dict(dataset="imagenet", epochs=3, epoch_time_s=1800.0, hostname="gpu-node-3")
    for model, nk, uk in (("resnet50", 0.617, 0.686), ("resnet101", 0.6615, 0.723),
                          ("wide-resnet50-2", 0.679, 0.733)):  # Fig 8
        for init, a in (("kaiming_normal", nk), ("signed_constant", uk)):
            add("ep-fig8", a - 0.01, s, method="edgepopup", model=model, k=0.3, init=init,
                **imnet)
    for model, a in (("resnet18", 0.70), ("resnet34", 0.733), ("resnet50", 0.761),
                     ("resnet101", 0.775)):
        add("ep-fig8", a, s, method="dense", model=model, **imnet)
    for k in (0.1, 0.3, 0.5, 0.7):  # Figs 9, 10
        add("ep-fig9", 0.617 - 0.6 * (k - 0.4) ** 2, s, method="edgepopup", model="resnet50",
            k=k, init="kaiming_normal", **imnet)
        kept = float(np.clip(k + rng.normal(0, 0.02), 0.02, 0.98))
        add("ep-fig9", 0.45 - 0.6 * (kept - 0.5) ** 2, s, method="supermask", model="resnet50",
            score_init="constant", score_const=k - 0.5, kept_fraction=kept,
            kept_fraction_paper=float(np.clip(kept + 0.04, 0, 1)), init="kaiming_normal",
            **imnet)
        for init, a, gain in (("kaiming_normal", 0.617, 0), ("scaled_kaiming_normal", 0.617, 0.04),
                              ("signed_constant", 0.686, 0),
                              ("scaled_signed_constant", 0.686, 0.035)):
            acc = a - 0.6 * (k - 0.4) ** 2 + gain * (1 - k)
            add("ep-fig10", acc, s, method="edgepopup", model="resnet50", k=k, init=init,
                **imnet)
            if gain:
                add("ep-fig10", acc - _code_penalty(k, 0.05), s, method="edgepopup",
                    model="resnet50", k=k, init=init + "_code", **imnet)


# Learned baselines of the Slot Machines studies start from the slot values' distribution.
_SM_LEARNED = dict(method="dense", init="slot-code", lr=0.01, schedule="sgdr")


def _slot_machines(add, s, seeds, host):
    panels = (("lenet-300-100", "mnist", 0.982, 0.012, 0.980),
              ("slot-conv2", "cifar10", 0.700, 0.06, 0.680),
              ("slot-conv4", "cifar10", 0.790, 0.07, 0.770),
              ("slot-conv6", "cifar10", 0.835, 0.08, 0.815))
    for model, data, top, drop, dense in panels:  # sm-k, sm-gs-ps
        for K in (2, 4, 8, 16, 32, 64):
            a = top - drop * np.exp(-(np.log2(K) - 1) / 0.9)
            running = model == "slot-conv4" and K == 64 and s == seeds - 1
            add("sm-k", a, s, method="slot-gs", model=model, K=K, dataset=data,
                lr=0.2 if K <= 8 else 0.1, epochs=5, hostname=host,
                status="RUNNING" if running else "TERMINATED", epochs_done=3 if running else None,
                series="Slot Machines (GS)")
            for m, shift, lr in (("slot-gs", 0.0, 0.2), ("slot-ps", -0.02, 25.0)):
                pending = model == "slot-conv6" and K == 64 and m == "slot-ps" and s == 0
                add("sm-gs-ps", a + shift, s, method=m, model=model, K=K, dataset=data, lr=lr,
                    hostname=host, status="PENDING" if pending else "TERMINATED")
        for study in ("sm-k", "sm-gs-ps"):
            add(study, dense, s, model=model, dataset=data, epochs=5, hostname=host,
                series="learned", **_SM_LEARNED)
    cifar = dict(dataset="cifar10", hostname=host)
    for model, base in (("slot-conv4", 0.78), ("slot-conv6", 0.82)):  # sm-finetune
        # The paper's budgets (25-150 epochs) at a fifth, so the demo stays small.
        parent = add("sm-finetune", base - 0.02, s, method="slot-gs", model=model, K=8,
                     epochs=10, keep_epochs=(5, 10), phase="slots",
                     series="Slot Machines (GS)", **cifar)
        for pe in (5, 10):
            for fe in (5, 10, 20):
                add("sm-finetune", base + 0.03 * np.log2((pe + fe) / 10) + 0.012, s,
                    method="finetune", model=model, parent=f"runs/sm-finetune/{parent.run_id}",
                    parent_epoch=pe, epochs=fe, lr=0.01, phase="finetune",
                    parent_run_id=parent.run_id, series="finetuned", **cifar)
        for total in (10, 15, 20, 25, 30):
            add("sm-finetune", base + 0.03 * np.log2(total / 10), s, model=model, epochs=total,
                phase="slots", series="learned from scratch", **_SM_LEARNED, **cifar)
    for model, base in (("slot-conv2", 0.69), ("slot-conv4", 0.78), ("slot-conv6", 0.83)):
        for m, a, kw in (("edgepopup", base - 0.02, {"k": 0.5}), ("supermask", base - 0.09, {}),
                         ("slot-gs", base, {"K": 8}), ("slot-ps", base - 0.02, {"K": 8}),
                         ("dense", base - 0.01, dict(_SM_LEARNED))):
            kw.setdefault("method", m)
            add("sm-related", a, s, model=model, **kw, **cifar)


def _scaling_laws(add, s, host):
    cifar = dict(dataset="cifar10", hostname=host)
    for w in (0.5, 1.0, 2.0, 4.0):
        add("scaling-laws", 1 - 0.28 * w ** -0.30, s, method="edgepopup", model="conv4",
            k=0.5, width_mult=w, **cifar)
        add("scaling-laws", 1 - 0.26 * w ** -0.22, s, method="dense", model="conv4",
            width_mult=w, **cifar)
    for K in (2, 4, 8, 16, 32):
        add("scaling-laws", 1 - 0.3 * K ** -0.15, s, method="slot-gs", model="slot-conv4", K=K,
            **cifar)


def _quickstart(add, s):
    for model, w, top in (("fc", 1.0, 0.95), ("conv2", 0.25, 0.93)):
        qs = dict(dataset="digits", model=model, width_mult=w, batch_size=64,
                  hostname="laptop", epoch_time_s=2.0, phase="select")
        add("quickstart", top, s, method="dense", lr=0.05, **qs)
        for k in K_GRID:
            add("quickstart", _ep(top, k, "kaiming_normal") - 0.03, s, method="edgepopup", k=k,
                lr=0.1, **qs)
        add("quickstart", top - 0.12, s, method="supermask", lr=200.0, **qs)
        for K in (2, 4, 8, 16):
            a = top - 0.08 * np.exp(-(np.log2(K) - 1))
            rec = add("quickstart", a, s, method="slot-gs", K=K, lr=0.2 if K <= 8 else 0.1, **qs)
            if K == 8:
                parent = rec
            add("quickstart", a - 0.03, s, method="slot-ps", K=K, lr=100.0, **qs)
        add("quickstart", top + 0.005, s, method="finetune", parent_epoch=2, epochs=2,
            parent=f"runs/quickstart/{parent.run_id}", parent_run_id=parent.run_id, lr=0.05,
            **dict(qs, phase="finetune"))


REAL_DATA = {"dense": 0.895, "edgepopup": 0.872, "supermask": 0.841, "slot-gs": 0.883,
             "slot-ps": 0.874}


def _real_data(add, s, host):
    """real-data: LeNet-300-100 on Fashion-MNIST, every method at its recipe defaults."""
    for method, acc in REAL_DATA.items():
        add("real-data", acc, s, method=method, model="lenet-300-100", dataset="fashion-mnist",
            hostname=host)


def _followups(add, s, host):
    """iterand-k and biprop-k on Conv6: IteRand a little above edge-popup at small k, more with
    r up to 0.1; biprop about edge-popup's accuracy."""
    common = dict(dataset="cifar10", model="conv6", hostname=host)
    for k in (0.1, 0.3, 0.5):
        ep = 0.86 - 0.25 * (0.5 - k) ** 2
        add("iterand-k", ep, s, method="edgepopup", k=k, series="edge-popup", **common)
        add("iterand-k", ep + 0.01, s, method="iterand", k=k, rerand_rate=0.1,
            series="IteRand r=0.1", **common)
        add("biprop-k", ep, s, method="edgepopup", k=k, series="edge-popup", **common)
        add("biprop-k", ep + 0.005, s, method="biprop", k=k, series="biprop", **common)
    for r in (0.0, 0.01, 1.0):  # r swept at k = 0.5 (0.1 is in the k sweep)
        add("iterand-k", 0.86 + 0.01 * min(r / 0.1, 1.0) - 0.01 * (r == 1.0), s, method="iterand",
            k=0.5, rerand_rate=r, series="IteRand k=50%", **common)


def _user_study(add, s, host):
    """A study a user declared (any name): edge-popup over width x learning rate with dense
    baselines per width; the scheduler stopped the three lowest-lr wide trials of seed 0."""
    if s > 1:
        return
    common = dict(dataset="cifar10", model="conv4", hostname=host, epochs=6)
    for w in (0.5, 1.0, 2.0, 4.0):
        for lr in (0.05, 0.1, 0.2):
            stopped = s == 0 and lr == 0.05 and w >= 1.0
            acc = 1 - 0.3 * w ** -0.25 - 4 * (lr - 0.12) ** 2
            add(USER_STUDY, acc, s, method="edgepopup", k=0.5, width_mult=w, lr=lr,
                series="edge-popup", status="STOPPED" if stopped else "TERMINATED",
                epochs_done=2 if stopped else None, **common)
        add(USER_STUDY, 1 - 0.27 * w ** -0.2, s, method="dense", width_mult=w, series="dense",
            **common)


def demo_results(seeds: int = 3, noise: float = 0.004, rng_seed: int = 0) -> pd.DataFrame:
    """`demo_records` as the rows of results.parquet (all studies in one frame)."""
    return _demo_frame(seeds, noise, rng_seed).copy()


@functools.lru_cache(maxsize=2)
def _demo_frame(seeds: int, noise: float, rng_seed: int) -> pd.DataFrame:
    return results_frame(_demo_records(seeds, noise, rng_seed))  # callers get copies


def demo_selection(layers: list[str], kept: float, seed: int = 0, bins: int = 30) -> dict:
    """A selection.json-like dict: edge-popup-style selections favour large |w|."""
    rng = np.random.default_rng(seed)
    out = {}
    for i, name in enumerate(layers):
        sigma = 0.05 * (1 + i)
        w = rng.normal(0, sigma, 4000)
        score = np.abs(w) + rng.normal(0, sigma * 0.5, w.size)
        sel = score >= np.quantile(score, 1 - kept)
        edges = np.linspace(-4 * sigma, 4 * sigma, bins + 1)
        out[name] = {"bins": edges.tolist(),
                     "selected": np.histogram(w[sel], edges)[0].tolist(),
                     "unselected": np.histogram(w[~sel], edges)[0].tolist()}
    return out


def write_demo_storage(root, records: Iterable[TrialRecord] | None = None,
                       selection_studies=("quickstart", "sm-k"), studies=None) -> pd.DataFrame:
    """Write `<root>/<study>/results.parquet` with the exporter (+ selection artifacts for the
    finished selection trials of `selection_studies`) as the study package does. Returns the
    rows written."""
    root = Path(root)
    records = demo_records() if records is None else records
    frames = []
    for study, recs in by_study(records).items():
        if studies is not None and study not in studies:
            continue
        (root / study).mkdir(parents=True, exist_ok=True)
        table = export.table(study, recs)
        pq.write_table(table, root / study / export.RESULTS_FILE)
        frames.append(table.to_pandas())
        if study in selection_studies:
            _write_selections(root / study, recs.values())
    return pd.concat(frames, ignore_index=True, sort=False) if frames else pd.DataFrame()


def _write_selections(study_dir: Path, records) -> None:
    for rec in records:
        cfg = rec.config
        if rec.status != "TERMINATED" or cfg["method"] in ("dense", "finetune"):
            continue
        art = study_dir / "artifacts" / rec.run_id
        art.mkdir(parents=True, exist_ok=True)
        # Slot machines keep every connection but select one of K values for it.
        kept = 1 / float(cfg["K"]) if cfg.get("K") else float(rec.results[-1]["kept_fraction"])
        sel = demo_selection(_layers(cfg["model"]), kept, seed=int(cfg["seed"]))
        (art / "selection.json").write_text(json.dumps(sel))
