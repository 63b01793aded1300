"""finetune: materialise a selection trial's selected weights into a dense network and train them.

The child has the parent's architecture with learned (dense) layers holding exactly the weights
the parent used at evaluation, and the parent's BatchNorm running statistics (its affine γ/β
start at 1/0), so before its first step it computes exactly what the parent computed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .base import selection_layers

# Fields a finetune trial takes from its parent: it must be the same network on the same data.
INHERITED = ("model", "depth", "width_mult", "dropout", "dense_first", "dense_last", "dataset",
             "data_root", "val_size", "subset", "synthetic_shape", "synthetic_classes",
             "synthetic_size")


def parent_checkpoint(parent: str, epoch: int | None) -> Path:
    """The checkpoint file a finetune trial starts from: `parent` is a checkpoint file or a trial
    (or Tune checkpoint) directory holding `checkpoint.pt` and, for kept epochs, `epoch_<E>.pt`."""
    from hiddenlab.study.config import ConfigError

    path = Path(parent).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise ConfigError("parent", f"{path} does not exist (give a trial directory or a "
                          "checkpoint file)")
    candidates = [path / f"epoch_{epoch}.pt"] if epoch is not None else []
    candidates.append(path / "checkpoint.pt")
    for c in candidates:
        if c.is_file() and (epoch is None or c.name != "checkpoint.pt" or
                            torch.load(c, map_location="cpu", weights_only=False)["epoch"] == epoch):
            return c
    what = f"epoch_{epoch}.pt (or checkpoint.pt at epoch {epoch})" if epoch is not None else \
        "checkpoint.pt"
    raise ConfigError("parent", f"no {what} in {path}")


def load_parent(cfg) -> tuple[object, dict]:
    from hiddenlab.study.config import ConfigError, TrialConfig

    ckpt = torch.load(parent_checkpoint(cfg.parent, cfg.parent_epoch), map_location="cpu",
                      weights_only=False)
    parent_cfg = TrialConfig.from_dict(ckpt["config"])
    if parent_cfg.method in ("dense", "finetune"):
        raise ConfigError("parent", f"the parent was trained with {parent_cfg.method}; finetune "
                          "starts from a selection method (edgepopup, supermask, slot-gs, slot-ps)")
    if parent_cfg.resolved_eval_mode == "sample":
        raise ConfigError("parent", "the parent evaluates by sampling; its selected weights are "
                          "not one network (train it with --eval-mode argmax/expected)")
    return parent_cfg, ckpt


def inherit(cfg, parent_cfg):
    """The finetune config with the parent's network and data fields."""
    return cfg.replace(**{f: getattr(parent_cfg, f) for f in INHERITED})


def from_parent(cfg, input_shape, num_classes) -> nn.Module:
    """A dense network (method finetune) holding the parent's evaluation weights."""
    from hiddenlab.models import build_model

    parent_cfg, ckpt = load_parent(cfg)
    parent = build_model(parent_cfg, input_shape, num_classes)
    parent.load_state_dict(ckpt["model"])
    parent.eval()
    with torch.no_grad():  # runs hooks (global top-k) so every layer's evaluation mask is set
        parent(torch.zeros(1, *input_shape))
    child = build_model(inherit(cfg, parent_cfg), input_shape, num_classes)
    with torch.no_grad():
        for (pn, pl), (cn, cl) in zip(selection_layers(parent), selection_layers(child)):
            assert pn == cn, (pn, cn)
            cl.weight.copy_(pl.materialize())
        child_buffers = dict(child.named_buffers())
        for name, buf in parent.named_buffers():
            if name.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked"):
                child_buffers[name].copy_(buf)
    return child
