"""Writing and checking FFCV .beton files (`hiddenlab data prepare DATASET --format ffcv`).

Layout: DATA_ROOT/ffcv/<dataset>/{train,test}.beton plus meta.json (options, sizes). `train`
holds the whole training part in the source's order; the loader selects train / validation
images by index, so one file serves every split and subset. RGB images go into an
RGBImageField (raw pixels for the small data sets; ImageNet as in ffcv-imagenet: longest side
at most --max-side, a --jpeg-fraction of the images JPEG-compressed at --quality); images with
another channel count (MNIST, digits) into a raw uint8 NDArrayField.

FFCV is imported inside the functions: it takes seconds to import.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from hiddenlab.data.datasets import DataError

PARTS = ("train", "test")
IMAGE, LABEL = "image", "label"


@dataclass(frozen=True)
class BetonOptions:
    """How images are stored. jpeg_fraction 0: raw pixels; 1: all JPEG; between: that fraction
    of the images (chosen at random) JPEG, the rest raw (FFCV's `proportion` mode)."""

    max_side: int | None = None
    jpeg_fraction: float = 0.0
    quality: int = 90

    def write_mode(self) -> str:
        if self.jpeg_fraction <= 0:
            return "raw"
        return "jpg" if self.jpeg_fraction >= 1 else "proportion"


IMAGENET_OPTIONS = BetonOptions(max_side=500, jpeg_fraction=0.5, quality=90)  # ffcv-imagenet's


def beton_path(folder: Path, part: str) -> Path:
    return Path(folder) / f"{part}.beton"


def write_beton(source: Sequence, path: str | os.PathLike, options: BetonOptions = BetonOptions(),
                num_workers: int = 1, chunksize: int = 100) -> Path:
    """Write `source` (index -> (HWC uint8 array or PIL image, int label)) to `path`.

    Written to a temporary name and renamed, so a crash (or a concurrent trial preparing the same
    file) never leaves a truncated file under the final name. FFCV shows a tqdm bar. If a writer
    process fails (a bad image, a bad option), the others are stopped and DataError names the
    file and the error; the temporary file, FFCV's shared memory and any folder made for the
    file are removed.
    """
    from ffcv.fields import IntField, NDArrayField, RGBImageField
    from ffcv.writer import MIN_PAGE_SIZE, DatasetWriter

    path = Path(path)
    if len(source) == 0:
        raise DataError(f"nothing to write to {path}: the source has no images", path)
    first = np.asarray(source[0][0])
    if first.ndim != 3:
        raise DataError(f"images must be H x W x C arrays, got shape {first.shape}", path)
    if first.shape[2] == 3:
        image_field = RGBImageField(write_mode=options.write_mode(), max_resolution=options.max_side,
                                    jpeg_quality=options.quality,
                                    compress_probability=options.jpeg_fraction)
    else:
        if options.jpeg_fraction > 0:
            raise DataError(f"JPEG needs RGB images; these have {first.shape[2]} channel(s)", path,
                            field="jpeg_fraction")
        image_field = NDArrayField(np.dtype("u1"), tuple(int(s) for s in first.shape))
    made = _missing_parents(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    writer = None
    try:
        # each writer process fills whole pages: small pages keep small data sets small
        small = len(source) * first.nbytes < 256 * MIN_PAGE_SIZE
        writer = DatasetWriter(str(tmp), {IMAGE: image_field, LABEL: IntField()},
                               page_size=MIN_PAGE_SIZE if small else 4 * MIN_PAGE_SIZE,
                               num_workers=max(1, num_workers))
        _write_supervised(writer, source, chunksize)
        os.replace(tmp, path)
    except BaseException as e:
        _release(writer)
        tmp.unlink(missing_ok=True)
        for folder in made:  # deepest first; only what this call made and left empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(e, WriterFailed):
            raise DataError(f"writing {path} failed in a writer process ({e}); nothing was "
                            "kept", path) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path


class WriterFailed(RuntimeError):
    """A writer process of FFCV's DatasetWriter raised or died."""


def _guarded_worker(*args) -> None:
    """FFCV's writer process, reporting its error on the queue (the last argument) and exiting
    quietly: FFCV's parent would otherwise wait forever for the images it never writes."""
    from ffcv.writer import worker_job_indexed_dataset

    *ffcv_args, errors = args
    try:
        worker_job_indexed_dataset(*ffcv_args)
    except BaseException as e:
        errors.put(f"{type(e).__name__}: {e}")
        raise SystemExit(1) from None  # no traceback: the parent reports the error


class _Supervisor:
    """Watches FFCV's writer processes. It stands in for two names of `ffcv.writer` during a
    write: `Process` (to keep each writer process it starts) and the `sleep` of its progress loop
    (the parent polls a counter of written images until all are written): between polls it
    raises WriterFailed when a writer process reported an error or died."""

    def __init__(self):
        self.errors = multiprocessing.Queue()
        self.workers: list[multiprocessing.Process] = []

    def process(self, *args, **kwargs) -> multiprocessing.Process:
        p = multiprocessing.Process(*args, **kwargs)
        self.workers.append(p)
        return p

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
        dead = [p for p in self.workers if p.exitcode not in (None, 0)]
        if dead or not self.errors.empty():
            try:
                message = self.errors.get(timeout=1.0)
            except queue.Empty:
                message = f"a writer process ended with exit code {dead[0].exitcode}"
            self.stop()
            raise WriterFailed(message)

    def stop(self) -> None:
        for p in self.workers:
            if p.is_alive():
                p.terminate()
            if p.pid is not None:
                p.join(5)


def _write_supervised(writer, source: Sequence, chunksize: int) -> None:
    """`writer.from_indexed_dataset(source)` with supervised writer processes."""
    import ffcv.writer
    from ffcv.utils import chunks

    supervisor = _Supervisor()
    work = chunks(list(enumerate(range(len(source)))), chunksize)
    saved = ffcv.writer.Process, ffcv.writer.sleep
    ffcv.writer.Process, ffcv.writer.sleep = supervisor.process, supervisor.sleep
    try:
        writer._write_common(len(source), work, _guarded_worker, (source, supervisor.errors))
    except BaseException:
        supervisor.stop()
        raise
    finally:
        ffcv.writer.Process, ffcv.writer.sleep = saved


def _release(writer) -> None:
    """FFCV's shared memory of an unfinished write (a finished one unlinks it itself)."""
    sm = getattr(writer, "metadata_sm", None)
    if sm is None or isinstance(sm, int):
        return
    with contextlib.suppress(Exception):
        sm.close()
    with contextlib.suppress(FileNotFoundError):
        sm.unlink()


def _missing_parents(path: Path) -> list[Path]:
    """The folders above `path` that do not exist yet, deepest first."""
    out, folder = [], path.parent
    while not folder.exists():
        out.append(folder)
        folder = folder.parent
    return out


def write_meta(folder: Path, dataset: str, options: BetonOptions, sizes: dict[str, int]) -> None:
    meta = {"dataset": dataset, "options": asdict(options), "sizes": sizes,
            "written": time.strftime("%Y-%m-%d %H:%M:%S")}
    (Path(folder) / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def read_meta(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def check_beton(path: str | os.PathLike):
    """Open a .beton with FFCV's Reader after checking that it is whole: header, field
    descriptors, metadata and every data allocation lie inside the file. A truncated file would
    otherwise make the decoders read past the end of the memory map (a crash, not an error).
    Returns the Reader."""
    from ffcv.reader import Reader
    from ffcv.types import ALLOC_TABLE_TYPE, CURRENT_VERSION, FieldDescType, HeaderType

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no FFCV file at {path}", path)
    size = path.stat().st_size

    def bad(why: str) -> DataError:
        return DataError(f"{path} is not a valid FFCV file ({why}); delete it and run "
                         f"`hiddenlab data prepare ... --format ffcv` again", path)

    if size < HeaderType.itemsize:
        raise bad(f"{size} bytes, shorter than the header")
    header = np.fromfile(path, dtype=HeaderType, count=1)[0]
    if header["version"] != CURRENT_VERSION:
        raise bad(f"format version {header['version']}, expected {CURRENT_VERSION}")
    n, fields = int(header["num_samples"]), int(header["num_fields"])
    if not 1 <= fields <= 64:
        raise bad(f"{fields} fields")
    if header["alloc_table_ptr"] > size:
        raise bad("truncated: the allocation table lies past the end of the file")
    try:
        reader = Reader(str(path))
    except Exception as e:  # garbage in the descriptors: whatever numpy/FFCV raise
        raise bad(f"{type(e).__name__}: {e}") from e
    meta_end = HeaderType.itemsize + fields * FieldDescType.itemsize + n * reader.metadata_type.itemsize
    if meta_end > size or len(reader.metadata) != n:
        raise bad("truncated: the per-image metadata is incomplete")
    table = reader.alloc_table
    if (size - int(header["alloc_table_ptr"])) % ALLOC_TABLE_TYPE.itemsize:
        raise bad("truncated: the allocation table is cut off")
    if len(table) and np.any(table["ptr"] + table["size"] > size):
        raise bad("truncated: image data lie past the end of the file")
    if set(reader.field_names) >= {IMAGE, LABEL}:
        allocated = np.unique(table["sample_id"]) if len(table) else np.empty(0)
        if len(allocated) != n:
            raise bad(f"{n} images in the header but data for {len(allocated)}")
    else:
        raise bad(f"fields {reader.field_names}, expected {IMAGE!r} and {LABEL!r}")
    return reader


def prepare(spec, cfg, root: Path, options: BetonOptions | None = None, num_workers: int = 1,
            force: bool = False) -> dict[str, Path]:
    """Write {train,test}.beton for a data set (skipping files already whole unless `force`).
    Returns part -> path."""
    folder = spec.ffcv_dir(cfg, root)
    if options is None:
        options = IMAGENET_OPTIONS if spec.name == "imagenet" else BetonOptions()
    paths, sizes = {}, {}
    for part in PARTS:
        path = beton_path(folder, part)
        if path.exists() and not force:
            try:
                sizes[part] = int(check_beton(path).num_samples)
                paths[part] = path
                continue
            except DataError:
                pass  # broken: write it again
        source = spec.ffcv_source(cfg, root, part)
        write_beton(source, path, options, num_workers=num_workers)
        paths[part], sizes[part] = path, len(source)
    write_meta(folder, spec.name, options, sizes)
    return paths
