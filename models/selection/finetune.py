"""finetune: materialise a selection trial's selected weights into a dense network and train them.

The child has the parent's architecture with learned (dense) layers holding exactly the weights
the parent used at evaluation, and the parent's BatchNorm running statistics (its affine γ/β
start at 1/0), so before its first step it computes exactly what the parent computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from hiddenlab.config import ConfigError, MethodOptions, TrialConfig, param

from ..build import build_model
from ..inits import init_weights
from .layers import DenseLayer, LayerSpec, selection_layers
from .method import BASE_RECIPE, Method
from .packing import FLOATS

# Fields a finetune trial takes from its parent: it must be the same network on the same data.
INHERITED = ("model", "depth", "width_mult", "dropout", "dataset", "data_root", "val_size",
             "subset", "synthetic_shape", "synthetic_classes", "synthetic_size", "seed")


@dataclass(frozen=True)
class Options(MethodOptions):
    parent: str | None = param(None, "the selection trial to start from: its directory or a "
                               "checkpoint file")
    parent_epoch: int | None = param(None, "the parent's epoch to start from (default: its "
                                     "last)", ge=1)


def parent_checkpoint(parent: str, epoch: int | None) -> Path:
    """The checkpoint file a finetune trial starts from: `parent` is a checkpoint file or a trial
    (or Tune checkpoint) directory holding `checkpoint.pt` and, for kept epochs, `epoch_<E>.pt`."""
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
                            _load(c)["epoch"] == epoch):
            return c
    what = f"epoch_{epoch}.pt (or checkpoint.pt at epoch {epoch})" if epoch is not None else \
        "checkpoint.pt"
    raise ConfigError("parent", f"no {what} in {path}")


def _load(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or not a checkpoint at all: name the file
        raise ConfigError("parent", f"{path} is not a readable checkpoint ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''})") from None


def load_parent(cfg) -> tuple[TrialConfig, dict]:
    METHOD.preflight(cfg)
    ckpt = _load(parent_checkpoint(cfg.parent, cfg.parent_epoch))
    parent_cfg = TrialConfig.from_dict(ckpt["config"])
    why = parent_cfg.method_spec.finetune_parent_error(parent_cfg.options)
    if why:
        raise ConfigError("parent", f"cannot finetune from a {parent_cfg.method} trial: {why}")
    return parent_cfg, ckpt


class Finetune(Method):
    name = "finetune"
    paper = "Aladago & Torresani, ICML 2021 (finetuning selected weights at equal budget)"
    summary = "materialise a selection trial's network and train its weights"
    Options = Options
    selects = False
    inherits = INHERITED
    packing = FLOATS  # exported: the finetuned weights

    def recipe(self, cfg, given):
        return dict(BASE_RECIPE, lr=0.01)  # the reference's learned/finetune rate

    def recipe_note(self) -> str:
        return "SGD lr 0.01, momentum 0.9, wd 1e-4, cosine, batch 128, 100 epochs"

    def child_fields(self, parent_ref: str, epoch: int | None) -> dict:
        return {"parent": parent_ref, "parent_epoch": epoch}

    def preflight(self, cfg) -> None:
        if not cfg.parent:
            raise ConfigError("parent", "finetune needs --parent (a selection trial's directory "
                              "or checkpoint)")
        if "://" not in cfg.parent:
            parent_checkpoint(cfg.parent, cfg.parent_epoch)

    def prepare(self, cfg):
        return inherit(cfg, load_parent(cfg)[0])

    def layer(self, spec: LayerSpec, cfg) -> DenseLayer:
        # Placeholder values: `from_parent` copies the parent's evaluation weights over them.
        return DenseLayer(spec, init_weights(cfg.init, spec.shape, spec.shape, 1.0))

    def build_model(self, cfg, input_shape, num_classes) -> nn.Module:
        return from_parent(cfg, input_shape, num_classes)


def inherit(cfg, parent_cfg):
    """The finetune config with the parent's network and data fields."""
    return cfg.replace(**{f: getattr(parent_cfg, f) for f in INHERITED})


def from_parent(cfg, input_shape, num_classes) -> nn.Module:
    """A dense network (method finetune) holding the parent's evaluation weights."""
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


METHOD = Finetune()
