"""The FFCV loader: .beton files decoded by FFCV's compiled pipeline (decoder, ToTensor, ToDevice,
ToTorchImage), then crop/flip and normalisation on the device. Default for ImageNet.

Determinism: FFCV's own random transforms (RandomHorizontalFlip, RandomTranslate,
RandomResizedCropRGBImageDecoder) draw from numba's unseeded per-thread generators, so a resumed
trial would see other crops. Here the order comes from FFCV's Random traversal (seeded by
(seed, epoch) through `next_epoch`), crop-with-padding and flip are the gpu loader's seeded,
vectorised ops, and ImageNet's random resized crop is a decoder that seeds numba's generator per
image from (seed, epoch, image index); it is recompiled each epoch to take the new seed (seconds,
against minutes per ImageNet epoch). FFCV Loaders are built on first use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ffcv.fields.basics import IntDecoder
from ffcv.fields.decoders import CenterCropRGBImageDecoder, SimpleRGBImageDecoder
from ffcv.fields.ndarray import NDArrayDecoder, NDArrayField
from ffcv.fields.rgb_image import IMAGE_MODES, ResizedCropRGBImageDecoder, get_random_crop
from ffcv.libffcv import imdecode, resize_crop
from ffcv.loader import Loader, OrderOption
from ffcv.pipeline.compiler import Compiler
from ffcv.transforms import Squeeze, ToDevice, ToTensor, ToTorchImage

from hiddenlab.data import seeding
from hiddenlab.data.augment import crop_flip, sample_params
from hiddenlab.data.datasets import DataError
from hiddenlab.data.ffcv_files import IMAGE, LABEL, PARTS, beton_path, check_beton, prepare
from hiddenlab.data.loaders.base import BaseLoader, DataContext

# Generated locally in seconds: prepared on first use. The others need an explicit
# `hiddenlab data prepare` (a download or hours of ImageNet encoding).
AUTO_PREPARE = ("digits", "synthetic")


# Each recompilation makes new numba dispatchers for FFCV's ctypes helpers (imdecode, ...). When
# one is garbage-collected numba's finaliser raises a KeyError ("Exception ignored in ...", once
# per epoch), and reusing one dispatcher across compilations fails outright; so they are kept
# alive: compiled code only, a few hundred kB per epoch.
_RETIRED_HELPERS: list = []


class SeededRandomResizedCrop(ResizedCropRGBImageDecoder):
    """FFCV's RandomResizedCropRGBImageDecoder with the crop drawn from numba's generator seeded
    per image by (epoch_seed, image index): the same crops whatever the thread schedule."""

    def __init__(self, output_size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        super().__init__(output_size)
        self.scale, self.ratio = scale, ratio
        self.epoch_seed = 0  # set before each epoch; baked into the compiled code

    @property
    def get_crop_generator(self):
        return get_random_crop

    def generate_code(self):
        # FFCV's ResizedCropRGBImageDecoder.generate_code plus the per-image seed
        jpg = IMAGE_MODES["jpg"]
        mem_read = self.memory_read
        my_range = Compiler.get_iterator()
        imdecode_c = Compiler.compile(imdecode)
        resize_crop_c = Compiler.compile(resize_crop)
        get_crop_c = Compiler.compile(self.get_crop_generator)
        _RETIRED_HELPERS.append((imdecode_c, resize_crop_c, get_crop_c))
        scale, ratio = np.array(self.scale), np.array(self.ratio)
        base = np.uint64(self.epoch_seed & 0xFFFFFFFF)
        mult, mask = np.uint64(2654435761), np.uint64(0xFFFFFFFF)

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, temp_storage = my_storage
            for dst_ix in my_range(len(batch_indices)):
                source_ix = batch_indices[dst_ix]
                field = metadata[source_ix]
                image_data = mem_read(field["data_ptr"], storage_state)
                height = np.uint32(field["height"])
                width = np.uint32(field["width"])
                if field["mode"] == jpg:
                    temp_buffer = temp_storage[dst_ix]
                    imdecode_c(image_data, temp_buffer, height, width, height, width, 0, 0, 1, 1,
                               False, False)
                    selected_size = 3 * height * width
                    temp_buffer = temp_buffer.reshape(-1)[:selected_size]
                    temp_buffer = temp_buffer.reshape(height, width, 3)
                else:
                    temp_buffer = image_data.reshape(height, width, 3)
                np.random.seed((base + np.uint64(source_ix) * mult) & mask)
                i, j, h, w = get_crop_c(height, width, scale, ratio)
                resize_crop_c(temp_buffer, i, i + h, j, j + w, destination[dst_ix])
            return destination[:len(batch_indices)]

        decode.is_parallel = True
        return decode


class FFCVLoader(BaseLoader):
    def __init__(self, path: Path, indices: np.ndarray, *, ctx: DataContext, train: bool,
                 batch_size: int, rgb: bool):
        cfg = ctx.cfg
        super().__init__(num_samples=len(indices), batch_size=batch_size, train=train,
                         seed=cfg.seed, device=ctx.device, normalizer=ctx.normalizer,
                         augment=ctx.augment)
        self.path = path
        aug = self.augment
        self.rrc = None
        if ctx.spec.name == "imagenet":
            size = ctx.spec.resolution
            if aug is not None and aug.resized_crop:
                self.rrc = decoder = SeededRandomResizedCrop((size, size))
            else:
                decoder = CenterCropRGBImageDecoder((size, size), size / ctx.spec.eval_resize)
        else:
            decoder = SimpleRGBImageDecoder() if rgb else NDArrayDecoder()
        self.pipelines = {
            IMAGE: [decoder, ToTensor(), ToDevice(ctx.device, non_blocking=True), ToTorchImage()],
            LABEL: [IntDecoder(), ToTensor(), Squeeze(1), ToDevice(ctx.device, non_blocking=True)],
        }
        self.indices, self.num_workers = indices, max(1, cfg.num_workers)
        self.order_seed = seeding.seed_for(cfg.seed, "ffcv-order") & 0xFFFFFFFF
        self._loader, self._compiled_for = None, None

    def _ffcv_loader(self) -> Loader:
        """Built on first use (FFCV compiles its pipeline on construction, seconds each), and
        again when the resized-crop seed changes: a new Loader compiles once, where FFCV's
        `recompile=True` would compile on construction and again on every pass."""
        key = None if self.rrc is None else self.rrc.epoch_seed
        if self._loader is None or key != self._compiled_for:
            self._loader = Loader(str(self.path), batch_size=self.batch_size,
                                  num_workers=self.num_workers,
                                  order=OrderOption.RANDOM if self.train else OrderOption.SEQUENTIAL,
                                  seed=self.order_seed, indices=self.indices, drop_last=False,
                                  os_cache=True,
                                  # FFCV takes the decoder out of the list it is given: a copy
                                  pipelines={k: list(v) for k, v in self.pipelines.items()})
            self._compiled_for = key
        return self._loader

    def __iter__(self):
        aug, params = self.augment, None
        epoch = self._next_epoch() if self.train else 0
        if self.rrc is not None:
            self.rrc.epoch_seed = seeding.seed_for(self.seed, epoch, "resized-crop")
        loader = self._ffcv_loader()
        if self.train:
            loader.next_epoch = epoch  # FFCV's Random order: rng(seed + epoch)
            if aug is not None and (aug.pad or aug.flip):
                params = sample_params(aug, self.num_samples, self.generator(epoch, "augment"))
                params = params.to(self.device)
        threads = torch.get_num_threads()
        batches = iter(loader)
        torch.set_num_threads(threads)  # FFCV sets torch's thread count to its num_workers
        pos = 0
        for x, y in batches:
            b = len(y)
            if params is not None:
                x = crop_flip(x, params[pos:pos + b], aug.pad)
            pos += b
            # FFCV reuses its output buffers for later batches: hand out copies
            yield self.normalizer(x), y.to(torch.int64, copy=True)


def build(ctx: DataContext):
    spec, cfg = ctx.spec, ctx.cfg
    folder = spec.ffcv_dir(cfg, ctx.root)
    paths = {part: beton_path(folder, part) for part in PARTS}
    missing = [p for p in paths.values() if not p.exists()]
    if missing:
        if spec.name not in AUTO_PREPARE:
            raise DataError(f"no FFCV files for {spec.name}: {', '.join(map(str, missing))} "
                            f"missing; run `hiddenlab data prepare {spec.name} --format ffcv "
                            f"--data-root {ctx.root}`", missing[0])
        prepare(spec, cfg, ctx.root, num_workers=max(1, cfg.num_workers))
    readers = {part: check_beton(path) for part, path in paths.items()}
    handlers = readers["train"].handlers
    rgb = not isinstance(handlers[IMAGE], NDArrayField)
    split = ctx.split(int(readers["train"].num_samples))
    test_idx = np.arange(int(readers["test"].num_samples))

    def make(part: str, idx: np.ndarray, train: bool, batch_size: int) -> FFCVLoader:
        return FFCVLoader(paths[part], idx, ctx=ctx, train=train, batch_size=batch_size, rgb=rgb)

    return (make("train", split.train, True, cfg.batch_size),
            make("train", split.val, False, cfg.eval_batch_size),
            make("test", test_idx, False, cfg.eval_batch_size))
