"""Synthetic results in the exact `results.parquet` schema (docs/CONTRACTS.md), for tests, demos
and trying the figures in a notebook before any training has run.

`trial_rows` makes the per-epoch rows of one trial with a chosen final accuracy; `demo_results`
builds every study with paper-like numbers, several seeds and a few trials that did not finish
(ERROR, RUNNING, PENDING, one point with a seed missing); `write_demo_storage` writes it the way
the study package does, with `selection.json` artifacts. Nothing here is a measurement.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from hiddenlab.config import TrialConfig

from .archs import analytic_params

IMAGENET_PARAMS = {"resnet18": 11.68e6, "resnet34": 21.78e6, "resnet50": 25.5e6,
                   "resnet101": 44.5e6, "wide-resnet50-2": 68.8e6}


_FIELDS = dataclasses.fields(TrialConfig)


def _config(**kw) -> TrialConfig:
    """A TrialConfig without validation (the model/method registries need not exist yet): only
    its resolution properties (keep, num_values, resolved_init) are used."""
    cfg = object.__new__(TrialConfig)
    for f in _FIELDS:
        if f.name in kw:
            v = kw.pop(f.name)
        elif f.default is not dataclasses.MISSING:
            v = f.default
        else:
            v = f.default_factory()
        object.__setattr__(cfg, f.name, v)
    if kw:
        raise TypeError(f"unknown config fields: {sorted(kw)}")
    return cfg


def _params(model: str, width_mult: float, depth=None) -> float:
    if model in IMAGENET_PARAMS:
        return IMAGENET_PARAMS[model]
    name = model if depth is None else f"conv{depth}"
    a = analytic_params(name, width_mult=width_mult)
    return float(a["total"]) if a else 1e6


def _layers(model: str) -> list[str]:
    if model.startswith(("conv", "slot-conv")):
        d = int(model.rsplit("conv", 1)[1])
        return [f"conv{i + 1}" for i in range(d)] + ["fc1", "fc2", "fc3"]
    if model in ("lenet-300-100", "fc"):
        return ["fc1", "fc2", "fc3"]
    return ["conv1", "layer1.0.conv1", "layer2.0.conv2", "layer3.0.conv2", "layer4.2.conv3", "fc"]


def trial_rows(study: str, *, acc: float, seed: int = 0, epochs_done: int | None = None,
               status: str = "TERMINATED", kept_fraction: float | None = None,
               hostname: str = "gpu-node-1", epoch_time_s: float = 20.0, **cfg_kw) -> list[dict]:
    """Per-epoch rows of one trial whose final test accuracy is `acc` (a fraction)."""
    cfg_kw.setdefault("epochs", 4)
    cfg = _config(seed=seed, **cfg_kw)
    d = {f.name: getattr(cfg, f.name) for f in _FIELDS}
    d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
    # Like TrialConfig.run_id: method defaults resolved, so `init=auto` and its default agree.
    ident = {k: v for k, v in d.items() if k != "data_root"}
    ident.update(k=cfg.keep, K=cfg.num_values, init=cfg.resolved_init,
                 lr=getattr(cfg, "learning_rate", None) or cfg.lr)
    ident = json.dumps(ident, sort_keys=True)
    run_id = f"{cfg.method}-{cfg.model}-{hashlib.sha1(ident.encode()).hexdigest()[:10]}"
    selects = cfg.method not in ("dense", "finetune")
    params = _params(cfg.model, cfg.width_mult, cfg.depth)
    if kept_fraction is None:  # Zhou learns its kept fraction: about half from logits at 0
        kept_fraction = 0.48 if cfg.method == "supermask" else cfg.keep
    kept = kept_fraction
    layers = _layers(cfg.model)
    n = cfg.epochs if epochs_done is None else epochs_done
    peak_lr = getattr(cfg, "learning_rate", None) or cfg.lr  # lr may be None: the recipe default
    common = {"study": study, "run_id": run_id, "status": status,
              "error": "TrialDiverged: loss is nan at epoch 2, step 17" if status == "ERROR" else None,
              **d, "K_resolved": cfg.num_values, "k_resolved": cfg.keep,
              "init_resolved": cfg.resolved_init}
    if status == "PENDING":
        return [{**common, "epoch": np.nan}]
    rows = []
    for e in range(1, n + 1):
        frac = e / cfg.epochs
        churn = (1 - kept) if kept < 1 else 0.5  # slot machines keep all, but swap values
        flip = (0.2 * churn * np.exp(-3 * frac) if selects and e > 1 else np.nan)
        row = {**common, "epoch": e, "train_loss": 2.0 * (1.1 - frac), "train_acc": acc * frac,
               "val_loss": 2.0 * (1.15 - frac), "val_acc": acc * frac - 0.005,
               "flip_rate": flip, "lr": peak_lr * 0.5 * (1 + np.cos(np.pi * frac)),
               "epoch_time_s": epoch_time_s, "kept_fraction": kept, "params": params,
               "subnet_params": kept * params, "test_acc": np.nan, "test_loss": np.nan,
               "done": False, "wall_time_s": epoch_time_s * e + 5.0, "hostname": hostname}
        for i, name in enumerate(layers):
            row[f"flip_rate_layers/{name}"] = (flip * (1.5 - i / len(layers))
                                              if np.isfinite(flip) else np.nan)
        rows.append(row)
    if status == "TERMINATED" and rows:
        rows[-1].update(test_acc=float(np.clip(acc, 0, 1)), test_loss=1.0 - acc, done=True)
    return rows


# --- the demo studies ----------------------------------------------------------------------------

_CIFAR_BASE = {"conv2": 0.655, "conv4": 0.745, "conv6": 0.785, "conv8": 0.80}
_INIT_BONUS = {"kaiming_normal": 0.0, "signed_constant": 0.015, "scaled_kaiming_normal": 0.002,
               "scaled_signed_constant": 0.016, "xavier_normal": -0.008,
               "xavier_constant": 0.004, "kaiming_uniform": -0.004}
K_GRID = (0.1, 0.3, 0.5, 0.7, 0.9)


def _ep(base, k, init):
    return base - 0.9 * (k - 0.5) ** 2 - (0.06 if k <= 0.1 else 0) + _INIT_BONUS.get(init, 0)


def demo_results(seeds: int = 3, noise: float = 0.004, rng_seed: int = 0) -> pd.DataFrame:
    """Every study with paper-like numbers. Deliberate gaps: ep-fig3 Conv8 N_k k=10% has one
    ERROR seed (so its point has n = seeds - 1), sm-k CONV-4 K=64 one RUNNING seed, sm-gs-ps one
    PENDING trial."""
    rng = np.random.default_rng(rng_seed)
    rows: list[dict] = []

    def add(study, acc, seed, **kw):
        status = kw.pop("status", "TERMINATED")
        rows.extend(trial_rows(study, acc=float(acc + rng.normal(0, noise)), seed=seed,
                               status=status, **kw))

    cifar = dict(dataset="cifar10")
    for s in range(seeds):
        host = f"gpu-node-{1 + s % 2}"
        for model, base in _CIFAR_BASE.items():  # Fig 3
            for k in K_GRID:
                for init in ("kaiming_normal", "signed_constant"):
                    bad = model == "conv8" and k == 0.1 and init == "kaiming_normal" and s == seeds - 1
                    add("ep-fig3", _ep(base, k, init), s, method="edgepopup", model=model, k=k,
                        init=init, hostname=host, status="ERROR" if bad else "TERMINATED",
                        epochs_done=2 if bad else None, **cifar)
            add("ep-fig3", base - 0.015, s, method="dense", model=model, optimizer="adam",
                lr=3e-4, batch_size=60, weight_decay=0.0, init="kaiming_normal", hostname=host,
                **cifar)
            add("ep-fig3", base - 0.03, s, method="dense", model=model, optimizer="sgd", lr=0.01,
                init="kaiming_normal", hostname=host, **cifar)
        for model in ("conv4", "conv6"):  # Fig 4
            for w in (0.25, 0.5, 1.0, 2.0):
                for init in ("kaiming_normal", "signed_constant"):
                    add("ep-fig4", _ep(_CIFAR_BASE[model], 0.5, init) + 0.045 * np.log2(w), s,
                        method="edgepopup", model=model, k=0.5, width_mult=w, init=init,
                        hostname=host, **cifar)
                add("ep-fig4", _CIFAR_BASE[model] - 0.02 + 0.022 * np.log2(w), s, method="dense",
                    model=model, width_mult=w, lr=0.01, init="kaiming_normal", hostname=host, **cifar)
        p1 = _params("conv4", 1.0)  # Fig 5: k x params(width) constant
        for k1 in (0.3, 0.5, 0.7):
            for w in (1.0, 1.5, 2.0, 3.0):
                k = min(1.0, k1 * p1 / _params("conv4", w))
                acc = 0.745 - 0.5 * (k1 - 0.6) ** 2 + 0.035 * np.log2(w) - 0.3 * (0.5 - k) ** 2
                add("ep-fig5", acc, s, method="edgepopup", model="conv4", k=round(k, 6), width_mult=w,
                    init="signed_constant", hostname=host, **cifar)
        for model in ("conv4", "conv6"):  # Fig 6
            for init in ("kaiming_normal", "signed_constant", "xavier_normal", "xavier_constant"):
                for k in K_GRID:
                    add("ep-fig6", _ep(_CIFAR_BASE[model], k, init), s, method="edgepopup",
                        model=model, k=k, init=init, hostname=host, **cifar)
                for c in (-1.0, 0.0, 1.0):
                    kept = float(np.clip(0.5 + 0.2 * c + rng.normal(0, 0.02), 0.05, 0.95))
                    add("ep-fig6", _ep(_CIFAR_BASE[model], kept, init) - 0.07, s,
                        method="supermask", model=model, score_init="constant", score_const=c,
                        init=init, lr=200.0, weight_decay=0.0, kept_fraction=kept, hostname=host,
                        **cifar)
            add("ep-fig6", _CIFAR_BASE[model] - 0.015, s, method="dense", model=model,
                optimizer="adam", lr=3e-4, hostname=host, **cifar)
        for model in ("conv4", "conv6"):  # Fig 7
            for init in ("kaiming_normal", "signed_constant", "scaled_kaiming_normal",
                         "scaled_signed_constant", "xavier_normal", "kaiming_uniform"):
                for k in K_GRID:
                    add("ep-fig7", _ep(_CIFAR_BASE[model], k, init), s, method="edgepopup",
                        model=model, k=k, init=init, hostname=host, **cifar)
        imnet = dict(dataset="imagenet", epochs=3, epoch_time_s=1800.0, hostname="gpu-node-3")
        if s < 2:  # ImageNet: 2 seeds
            for model, nk, uk in (("resnet50", 0.617, 0.686), ("resnet101", 0.6615, 0.723),
                                  ("wide-resnet50-2", 0.679, 0.733)):  # Fig 8
                for init, a in (("kaiming_normal", nk), ("signed_constant", uk)):
                    add("ep-fig8", a - 0.01, s, method="edgepopup", model=model, k=0.3, init=init,
                        **imnet)
            for model, a in (("resnet18", 0.70), ("resnet34", 0.733), ("resnet50", 0.761),
                             ("resnet101", 0.775)):
                add("ep-fig8", a, s, method="dense", model=model, lr=0.256, **imnet)
            for k in (0.1, 0.3, 0.5, 0.7):  # Figs 9, 10
                add("ep-fig9", 0.617 - 0.6 * (k - 0.4) ** 2, s, method="edgepopup",
                    model="resnet50", k=k, init="kaiming_normal", **imnet)
                kept = float(np.clip(k + rng.normal(0, 0.02), 0.02, 0.98))
                add("ep-fig9", 0.45 - 0.6 * (kept - 0.5) ** 2, s, method="supermask",
                    model="resnet50", score_const=k - 0.5, kept_fraction=kept,
                    init="kaiming_normal", **imnet)
                for init, a, gain in (("kaiming_normal", 0.617, 0),
                                      ("scaled_kaiming_normal", 0.617, 0.04),
                                      ("signed_constant", 0.686, 0),
                                      ("scaled_signed_constant", 0.686, 0.035)):
                    add("ep-fig10", a - 0.6 * (k - 0.4) ** 2 + gain * (1 - k), s,
                        method="edgepopup", model="resnet50", k=k, init=init, **imnet)
        slot_panels = (("lenet-300-100", "mnist", 0.982, 0.012, 0.980),
                       ("slot-conv2", "cifar10", 0.700, 0.06, 0.680),
                       ("slot-conv4", "cifar10", 0.790, 0.07, 0.770),
                       ("slot-conv6", "cifar10", 0.835, 0.08, 0.815))
        for model, data, top, drop, dense in slot_panels:  # sm-k, sm-gs-ps
            for K in (2, 4, 8, 16, 32, 64):
                a = top - drop * np.exp(-(np.log2(K) - 1) / 0.9)
                running = model == "slot-conv4" and K == 64 and s == seeds - 1
                add("sm-k", a, s, method="slot-gs", model=model, K=K, dataset=data,
                    lr=0.2 if K <= 8 else 0.1, epochs=5, hostname=host,
                    status="RUNNING" if running else "TERMINATED",
                    epochs_done=3 if running else None)
                for m, shift, lr in (("slot-gs", 0.0, 0.2), ("slot-ps", -0.02, 25.0)):
                    pending = model == "slot-conv6" and K == 64 and m == "slot-ps" and s == 0
                    add("sm-gs-ps", a + shift, s, method=m, model=model, K=K, dataset=data, lr=lr,
                        hostname=host, status="PENDING" if pending else "TERMINATED")
            for study in ("sm-k", "sm-gs-ps"):
                add(study, dense, s, method="dense", model=model, dataset=data, lr=0.01,
                    epochs=5, hostname=host)
        for model, base in (("slot-conv4", 0.78), ("slot-conv6", 0.82)):  # sm-finetune
            for pe in (25, 50):
                for fe in (25, 50, 100):
                    add("sm-finetune", base + 0.03 * np.log2((pe + fe) / 50) + 0.012, s,
                        method="finetune", model=model, parent=f"runs/sm-finetune/slot-{model}-{s}",
                        parent_epoch=pe, epochs=fe, lr=0.01, hostname=host, **cifar)
            for total in (50, 75, 100, 125, 150):
                add("sm-finetune", base + 0.03 * np.log2(total / 50), s, method="dense",
                    model=model, epochs=total, lr=0.01, hostname=host, **cifar)
        for model, base in (("slot-conv2", 0.69), ("slot-conv4", 0.78), ("slot-conv6", 0.83)):
            for m, a, kw in (("edgepopup", base - 0.02, {"k": 0.5}),
                             ("supermask", base - 0.09, {"lr": 200.0}),
                             ("slot-gs", base, {"K": 8}), ("slot-ps", base - 0.02, {"K": 8}),
                             ("dense", base - 0.01, {"lr": 0.01})):
                add("sm-related", a, s, method=m, model=model, hostname=host, **kw, **cifar)
        for w in (0.5, 1.0, 2.0, 4.0):  # scaling-laws
            add("scaling-laws", 1 - 0.28 * w ** -0.30, s, method="edgepopup", model="conv4",
                k=0.5, width_mult=w, hostname=host, **cifar)
            add("scaling-laws", 1 - 0.26 * w ** -0.22, s, method="dense", model="conv4",
                width_mult=w, lr=0.01, hostname=host, **cifar)
        for K in (2, 4, 8, 16, 32):
            add("scaling-laws", 1 - 0.3 * K ** -0.15, s, method="slot-gs", model="slot-conv4", K=K,
                hostname=host, **cifar)
        if s < 2:  # quickstart: digits, FC and quarter-width Conv2, every method, 2 seeds
            for model, w, top in (("fc", 1.0, 0.95), ("conv2", 0.25, 0.93)):
                qs = dict(dataset="digits", model=model, width_mult=w, batch_size=64,
                          hostname="laptop", epoch_time_s=2.0)
                add("quickstart", top, s, method="dense", lr=0.05, **qs)
                for k in K_GRID:
                    add("quickstart", _ep(top, k, "kaiming_normal") - 0.03, s,
                        method="edgepopup", k=k, lr=0.1, **qs)
                add("quickstart", top - 0.12, s, method="supermask", lr=200.0,
                    weight_decay=0.0, **qs)
                for K in (2, 4, 8, 16):
                    a = top - 0.08 * np.exp(-(np.log2(K) - 1))
                    add("quickstart", a, s, method="slot-gs", K=K, lr=0.2 if K <= 8 else 0.1, **qs)
                    add("quickstart", a - 0.03, s, method="slot-ps", K=K, lr=100.0, **qs)
                add("quickstart", top + 0.005, s, method="finetune", parent_epoch=5, epochs=10,
                    parent=f"quickstart/slot-gs-{model}-{s}", lr=0.05, **qs)
    return pd.DataFrame(rows)


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


def write_demo_storage(root, df: pd.DataFrame | None = None, selection_studies=("quickstart", "sm-k"),
                       studies=None) -> pd.DataFrame:
    """Write `<root>/<study>/results.parquet` (+ selection artifacts for the finished selection
    trials of `selection_studies`) as the study package does. Returns the frame written."""
    root = Path(root)
    df = demo_results() if df is None else df
    for study, g in df.groupby("study"):
        if studies is not None and study not in studies:
            continue
        (root / study).mkdir(parents=True, exist_ok=True)
        # A study has per-layer flip columns only for the layers of its own models.
        empty = [c for c in g.columns if c.startswith("flip_rate_layers/") and g[c].isna().all()]
        g = g.drop(columns=empty)
        g.to_parquet(root / study / "results.parquet", index=False)
        if study in selection_studies:
            last = g.sort_values("epoch").groupby("run_id").tail(1)
            for _, r in last.iterrows():
                if r["status"] != "TERMINATED" or r["method"] in ("dense", "finetune"):
                    continue
                art = root / study / "artifacts" / r["run_id"]
                art.mkdir(parents=True, exist_ok=True)
                # Slot machines keep every connection but select one of K values for it.
                kept = 1 / float(r["K_resolved"]) if r["method"] in ("slot-gs", "slot-ps") \
                    else float(r["kept_fraction"])
                sel = demo_selection(_layers(r["model"]), kept, seed=int(r["seed"]))
                (art / "selection.json").write_text(json.dumps(sel))
    return df
