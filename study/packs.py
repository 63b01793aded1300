"""Packed trials in a study: grouping the planned trials into packs, the Ray Tune trainable and
reporter of a pack, and the expansion of a pack's results into its members' records.

A study runs packed with `pack: N` (a `Study` field) or `hiddenlab study run --pack N`: the
trials still to run in a phase are grouped by `packing.pack_key` (method, architecture, data,
batch size, epochs, execution) into packs of at most N, sizes balanced; each pack is one Ray Tune
trial whose config lists its members (`pack_members`, each a trial's usual config with its run
id). The pack reports each epoch's metrics of every member under `members`; `expand` turns a
pack's Tune record into one `TrialRecord` per member, so results.parquet, `study show` and the
skipping of finished run ids see members exactly as they see unpacked trials.

Finished run ids are skipped per member: packs are formed from the unfinished trials only, so a
pack whose members all finished is never formed. An interrupted pack resumes whole from its last
checkpoint (every member's state); a member that failed for good (diverged) stays failed, as an
unpacked trial does; with --retry-errored the errored members run again, repacked with the other
unfinished trials. Packed experiments are named `<experiment>-pack<N>`, so a run with another
pack size (or none) never resumes one as if it were its own.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import tempfile
import time
from dataclasses import replace
from typing import Any, Sequence

from hiddenlab.config import ConfigError

PACK_KEY = "pack_members"


def pack_size(study, opts) -> int:
    """The pack size of a run: `--pack` if given, else the study's `pack`."""
    size = opts.pack if getattr(opts, "pack", None) is not None else getattr(study, "pack", 1)
    return int(size or 1)


def experiment_name(name: str, size: int) -> str:
    return name if size <= 1 else f"{name}-pack{size}"


def group(trials: Sequence, size: int) -> list[list]:
    """Planned trials in packs of at most `size` sharing a pack key (plan order kept; the packs
    of one key as even as possible)."""
    from hiddenlab.study.packing import check_packable, pack_key

    by_key: dict[str, list] = {}
    for t in trials:
        by_key.setdefault(pack_key(t.cfg), []).append(t)
    packs = []
    for members in by_key.values():
        count = math.ceil(len(members) / size)
        base, extra = divmod(len(members), count)
        start = 0
        for i in range(count):
            n = base + (i < extra)
            packs.append(members[start:start + n])
            start += n
    for p in packs:
        check_packable([t.cfg for t in p])
    return packs


def check(plan, size: int) -> None:
    """Refuse, before Ray starts, a plan whose packs could not train (ConfigError)."""
    if size > 1:
        for phase in plan.phases:
            group(phase.trials, size)


def pack_id(members: Sequence) -> str:
    """`pack<N>-<method>-<model>-<hash of the member run ids>`."""
    digest = hashlib.sha1(json.dumps(sorted(t.run_id for t in members)).encode()).hexdigest()
    cfg = members[0].cfg
    return f"pack{len(members)}-{cfg.method}-{cfg.model}-{digest[:10]}"


class _Members:
    """`tune.sample_from` callable: the member configs of the trial's pack id."""

    def __init__(self, table: dict[str, list[dict]]):
        self.table = table

    def __call__(self, config):
        return self.table[config["run_id"]]


def param_space(trials: Sequence, study: str, scale: str, size: int) -> dict[str, Any]:
    """One grid over the pack ids; each pack's members (their usual Ray configs) under
    `pack_members`."""
    from ray import tune

    packs = group(trials, size)
    if not packs:
        raise ValueError("no trials to run")
    table = {pack_id(p): [t.ray_config(study, scale) for t in p] for p in packs}
    return {"run_id": tune.grid_search(list(table)), "study": study, "scale": scale,
            PACK_KEY: tune.sample_from(_Members(table))}


def count(trials: Sequence, size: int) -> int:
    """Ray Tune trials: packs, or the trials themselves when unpacked."""
    return len(group(trials, size)) if size > 1 else len(trials)


# --- under Ray Tune -------------------------------------------------------------------------------
class PackTuneReporter:
    """The packed trainer's reporter on `ray.tune.report`: one Tune result per epoch with every
    member's metrics under `members`, one Tune checkpoint holding every member's state; members'
    artifacts and kept epochs go to the storage under their own run ids, as unpacked trials'."""

    progress = False

    def __init__(self, run_id: str, cfgs: dict, storage_uri: str | None, study: str | None,
                 threads: int | None):
        from hiddenlab.study.reporter import TuneReporter

        # the pack's own checkpoint reading and fatal marker are a trial's
        self.base = TuneReporter(next(iter(cfgs.values())), run_id, storage_uri, study, threads)
        self.threads, self.run_id, self.study = threads, run_id, study
        self.storage = self.base.storage
        self.keep = {rid: set(cfg.keep_epochs) for rid, cfg in cfgs.items()}
        self.started = time.time()

    def load_state(self) -> dict | None:
        return self.base.load_state()

    def report_fatal(self, error: BaseException) -> None:
        self.base.report_fatal(error)

    def report(self, epoch: int, members: dict, state: dict, artifacts: dict) -> None:
        import torch
        from ray import tune

        from hiddenlab.study.reporter import MARKER_FILE, STATE_FILE, _node_id, _plain

        if self.storage is not None:
            for rid, files in artifacts.items():
                for name, content in files.items():
                    data = content.encode() if isinstance(content, str) else bytes(content)
                    self.storage.write_bytes(data, self.study, "artifacts", rid, name)
        out = {"epoch": epoch, "members": _plain(members), "run_id": self.run_id,
               "hostname": socket.gethostname(), "node_id": _node_id(),
               "wall_time_s": time.time() - self.started}
        with tempfile.TemporaryDirectory(prefix="hiddenlab-pack-") as d:
            path = os.path.join(d, STATE_FILE)
            torch.save(state, path)
            with open(os.path.join(d, MARKER_FILE), "w") as f:
                json.dump({"run_id": self.run_id, "epoch": epoch,
                           "members": sorted(state["members"])}, f)
            for rid, member in state["members"].items():
                if epoch in self.keep.get(rid, ()) and self.storage is not None:
                    kept = os.path.join(d, f"{rid}.pt")
                    torch.save(member, kept)
                    self.storage.upload_file(kept, self.study, "checkpoints", rid,
                                             f"epoch_{epoch}.pt")
                    os.remove(kept)
            tune.report(out, checkpoint=tune.Checkpoint.from_directory(d))


def make_trainable(storage_uri: str, study: str, cpus_per_trial: float = 1.0):
    """The Ray Tune function trainable of a pack."""

    def hiddenlab_pack(config: dict) -> None:
        from hiddenlab.study.packing import run_pack
        from hiddenlab.study.spaces import config_from_ray

        cfgs = {m["run_id"]: config_from_ray(m) for m in config[PACK_KEY]}
        reporter = PackTuneReporter(config["run_id"], cfgs, storage_uri, study,
                                    threads=max(1, int(math.floor(cpus_per_trial))))
        try:
            run_pack(list(cfgs.values()), reporter, run_ids=list(cfgs))
        except ConfigError as e:  # deterministic for the whole pack: retrying cannot help
            reporter.report_fatal(e)
            raise

    return hiddenlab_pack


# --- results ---------------------------------------------------------------------------------------
def expand(record) -> list:
    """A Tune trial record as trial records: itself for an unpacked trial, one per member for a
    pack (its epochs' rows, its own failure, its status: TERMINATED once its last epoch is in,
    ERROR if it failed, else the pack's)."""
    members = record.config.get(PACK_KEY)
    if not members:
        return [record]
    out = []
    for cfg in members:
        rid = cfg["run_id"]
        rows, error, fatal = [], record.error, record.fatal
        for r in record.results:
            m = (r.get("members") or {}).get(rid)
            if m is None:
                continue
            if m.get("fatal"):
                error, fatal = m.get("error"), True
                continue
            rows.append({**m, "timestamp": r.get("timestamp"), "hostname": r.get("hostname"),
                         "node_id": r.get("node_id")})
        status = "ERROR" if fatal else \
            "TERMINATED" if rows and rows[-1].get("done") else record.status
        out.append(replace(record, run_id=rid, config=dict(cfg), status=status,
                           error=error if status == "ERROR" else None, fatal=fatal,
                           results=rows))
    return out
