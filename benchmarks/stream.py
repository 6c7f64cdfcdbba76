"""Streaming ImageNet-style data: what one loader worker decodes per second, and how many a GPU would need.

A generated tree of full-size JPEGs (4:3 crops of scikit-image's bundled photographs, 500 x 375 by default,
quality 93: photo statistics, so decode costs are those of ImageNet-like pictures; the mean file size is
reported: ImageNet's training set averages about 110 kB per JPEG, 138 GB for 1.28 million, most of them
500 pixels wide) is read by:

1. one worker's work for each objective's views (study/data/loader.py `Decoder` on batch plans, in this
   process, one thread): read + decode + cut + stack, images per second per worker, with each of our
   decoders (study/data/decoders.py: PIL, and TorchCodec where importable);
2. other decoders for the same training cut (RandomResizedCrop 224), from bytes in memory: PIL, OpenCV
   (unnas' choice: imread + bilinear resize without antialiasing), simplejpeg, torchvision.io (deprecated
   since torchvision 0.29); each only if importable (`--extra PATH` adds a folder of extra packages, e.g.
   `pip install --target PATH opencv-python-headless simplejpeg torchcodec`, to the end of sys.path);
3. the real loader (`StreamBatches`, `--workers` processes) end to end, images per second;
4. the top-level torch ops of one training step of the paper's DARTS ImageNet network per objective (each
   costs the host 5-10 us on a GPU, which bounds the step rate at batch 32);
5. with `--device cuda`: the training step of the paper's DARTS ImageNet network (C=32, 22 cells, cell 00004
   of unnas) per objective at batch 32 on uint8 batches already on the GPU, images per second, and the loader
   workers that rate needs at the measured per-worker rate.

    python benchmarks/stream.py [--images 256 --workers 2 --json benchmarks/results/stream.json]
    python benchmarks/stream.py --device cuda --steps 50      # on a GPU machine: step rate and workers needed

Times are CPU time of this process for the one-worker rows (the machine may be shared), wall time for the
loader and the GPU rows; each row is the median of `--rounds` rounds.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from study.data import build_dataset  # noqa: E402
from study.data.loader import TRAIN, Decoder, Plan  # noqa: E402
from study.data.views import ResizedCrop, ShortSideCrop  # noqa: E402

PIPELINES = {  # each objective's worker cuts (training view; every objective tests on resize 256 + centre 224)
    "supervised, rotation, colorization (train)": ResizedCrop(224),
    "jigsaw (train)": ShortSideCrop(256, 255, random=True),
    "test view (all objectives)": ShortSideCrop(256, 224),
}
UNNAS_00004 = ("normal=avg_pool_3x3~1,sep_conv_3x3~1|sep_conv_5x5~1,dil_conv_5x5~1|none~0,dil_conv_3x3~2|"
               "dil_conv_3x3~2,sep_conv_3x3~1;reduce=sep_conv_3x3~0,dil_conv_3x3~0|skip_connect~0,dil_conv_3x3~0|"
               "none~1,dil_conv_5x5~1|dil_conv_3x3~4,skip_connect~4")


def make_tree(root: Path, n: int, size: tuple[int, int], classes: int = 4, seed: int = 0) -> float:
    """Write train/ and val/ with `n` training JPEGs (4:3 crops of bundled photographs); mean bytes per file."""
    import skimage.data
    from PIL import Image

    photos = [getattr(skimage.data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket",
                                                         "hubble_deep_field", "immunohistochemistry")]
    rng = np.random.default_rng(seed)
    sizes = []
    for split, count in (("train", n), ("val", max(classes, n // 8))):
        for k in range(count):
            photo = photos[k % len(photos)]
            h, w = photo.shape[:2]
            top = min(h, w * 3 // 4)  # the tallest 4:3 crop; crops of 80-100% of it are barely resampled
            ch = int(rng.integers(top * 4 // 5, top + 1))
            cw = ch * 4 // 3
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            img = Image.fromarray(photo[y:y + ch, x:x + cw]).resize(size, Image.BICUBIC)
            folder = root / split / f"n{k % classes:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{k:05d}.JPEG"
            img.save(path, quality=93)
            sizes.append(path.stat().st_size)
    return float(np.mean(sizes))


def available_decoders() -> list[str]:
    """Our decoders this environment can run."""
    from study.data.decoders import DECODERS, check_decoder

    found = []
    for name in DECODERS:
        try:
            check_decoder(name)
        except Exception:  # a DataError: not installed here
            continue
        found.append(name)
    return found


def per_worker(decoder: Decoder, n: int, batch: int, rounds: int, view: int = TRAIN) -> float:
    """Images per CPU-second of one worker's work (decode, cut, stack) over the first `n` training images."""
    rates = []
    for r in range(rounds):
        t0 = time.process_time()
        for first in range(0, n, batch):
            pos = np.arange(first, min(first + batch, n))
            decoder[Plan(TRAIN, view, (0, r, 0), pos, pos)]
        rates.append(n / (time.process_time() - t0))
    return statistics.median(rates)


def alternatives(files: list[Path], rounds: int) -> dict[str, float]:
    """Decode + RandomResizedCrop(224) per CPU-second with each importable decoder (same boxes for all)."""
    from PIL import Image

    view = ResizedCrop(224)
    blobs = [f.read_bytes() for f in files]
    boxes = [view.box(*Image.open(io.BytesIO(b)).size, np.random.default_rng(k)) for k, b in enumerate(blobs)]

    def pil(blob, box):
        with Image.open(io.BytesIO(blob)) as im:
            return np.asarray(im.convert("RGB").resize((224, 224), Image.BILINEAR, box=box))

    candidates = {"PIL (ours, default)": pil}
    try:
        import cv2

        cv2.setNumThreads(1)

        def opencv(blob, box):
            img = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            return cv2.resize(img[y0:y1, x0:x1], (224, 224), interpolation=cv2.INTER_LINEAR)
        candidates["OpenCV (unnas: no antialiasing)"] = opencv
    except ImportError:
        pass
    try:
        import simplejpeg

        def simple(blob, box):
            img = Image.fromarray(simplejpeg.decode_jpeg(blob, colorspace="RGB"))
            return np.asarray(img.resize((224, 224), Image.BILINEAR, box=box))
        candidates["simplejpeg + PIL resize"] = simple
    except ImportError:
        pass
    try:
        from torchcodec.decoders import ImageReadMode, decode_image

        from study.data.views import resample_tensor

        def codec(blob, box):
            img = decode_image(torch.frombuffer(bytearray(blob), dtype=torch.uint8), mode=ImageReadMode.RGB)
            return resample_tensor(img, box, 224)
        candidates["TorchCodec + torch resize (ours, opt-in)"] = codec
    except ImportError:
        pass
    try:
        import warnings

        import torchvision.io as tvio

        warnings.filterwarnings("ignore", "The image decoding", DeprecationWarning)  # measured all the same
        from torchvision.transforms.v2 import functional as F

        def tv(blob, box):
            img = tvio.decode_jpeg(torch.frombuffer(bytearray(blob), dtype=torch.uint8))
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            return F.resized_crop(img, y0, x0, y1 - y0, x1 - x0, [224, 224], antialias=True)
        candidates["torchvision.io + resized_crop"] = tv
    except ImportError:
        pass
    out = {}
    for name, fn in candidates.items():
        rates = []
        for _ in range(rounds):
            t0 = time.process_time()
            for blob, box in zip(blobs, boxes):
                fn(blob, box)
            rates.append(len(blobs) / (time.process_time() - t0))
        out[name] = statistics.median(rates)
    return out


def loader_rate(root: Path, workers: int, batch: int, rounds: int) -> float:
    """Images per wall second through StreamBatches with `workers` processes (supervised's views)."""
    data = build_dataset("imagenet", data_root=str(root), loader_workers=workers)
    source = data.batches((ResizedCrop(224), ShortSideCrop(256, 224)), 0)
    rates = []
    try:
        for epoch in range(rounds + 1):  # the first pass starts the workers: not counted
            t0, n = time.perf_counter(), 0
            for images, _ in source.train([torch.Generator()], batch, epoch):
                n += images[0].shape[0]
            if epoch:
                rates.append(n / (time.perf_counter() - t0))
    finally:
        source.close()
    return statistics.median(rates)


def host_ops(batch: int = 2, side: int = 32) -> dict[str, int]:
    """Top-level aten ops of one training step (forward, backward, optimiser) of the DARTS ImageNet network per
    objective, counted on the CPU at a tiny input: each costs the host 5-10 us on a GPU whatever its size,
    which bounds a GPU's step rate at small batches."""
    from study.data.stream import stand_in
    from study.objectives import create_objective
    from study.spaces import NetShape, get_space
    from study.training.run import Budget
    from study.training.trainer import make_optimizer

    data = stand_in("imagenet", {"resize": side + 4}, side, 1000)
    space = get_space("darts")
    out = {}
    for name in ("supervised", "rotation", "colorization", "jigsaw"):
        objective = create_objective(name, data)
        shape = NetShape(objective.c_in, side, 1000, 32, 7, stem="imagenet", depth=22)
        model = objective.build(space.build(space.parse(UNNAS_00004), shape))
        opt = make_optimizer(model, Budget("imagenet", 1, batch, 0.0125, 5e-5))
        x = torch.randint(0, 256, (batch, 3, objective.image_size, objective.image_size), dtype=torch.uint8)
        y = torch.zeros(batch, dtype=torch.long)
        gen = torch.Generator().manual_seed(0)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            inputs, targets = objective.train_batch(x, y, gen)
            loss = objective.loss(model(inputs), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        # Ops the host dispatches: aten ops not inside another aten op (backward ones sit under autograd nodes).
        out[name] = sum(1 for e in prof.events() if e.name.startswith("aten::")
                        and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")))
    return out


def gpu_steps(device: str, steps: int, batch: int) -> dict[str, float]:
    """Training images per second of the DARTS ImageNet network per objective, uint8 batches on the device."""
    from study.data.stream import StreamData, stand_in
    from study.objectives import create_objective
    from study.spaces import NetShape, get_space
    from study.training.devices import autocast
    from study.training.run import Budget
    from study.training.trainer import make_optimizer

    data: StreamData = stand_in("imagenet", {"resize": 256}, 224, 1000).to(device)
    space = get_space("darts")
    out = {}
    for name in ("supervised", "rotation", "colorization", "jigsaw"):
        objective = create_objective(name, data)
        shape = NetShape(objective.c_in, 224, 1000, 32, 7, stem="imagenet", depth=22)
        model = objective.build(space.build(space.parse(UNNAS_00004), shape)).to(device)
        opt = make_optimizer(model, Budget("imagenet", 1, batch, 0.0125, 5e-5))
        side = objective.image_size
        x = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, device=device)
        y = torch.randint(0, 1000, (batch,), device=device)
        gen = torch.Generator(device=device).manual_seed(0)

        def step() -> None:
            inputs, targets = objective.train_batch(x, y, gen)
            with autocast(inputs.device, "auto"):
                loss = objective.loss(model(inputs), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        for _ in range(5):
            step()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        out[name] = steps * batch / (time.perf_counter() - t0)
    return out


def main() -> None:
    """Measure, print, optionally write JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--size", default="500x375", help="width x height of the generated JPEGs")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="loader processes for the end-to-end row (0: skip)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--extra", type=Path, action="append", default=[],
                   help="a folder of extra packages (OpenCV, simplejpeg, TorchCodec) to compare (repeatable)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    for extra in args.extra:
        sys.path.append(str(extra))  # after the environment's own packages: they win
    torch.set_num_threads(1)
    size = tuple(int(v) for v in args.size.split("x"))
    result: dict = {"images": args.images, "size": args.size, "per_worker": {}, "threads": 1}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        result["mean_file_bytes"] = make_tree(root, args.images, size)
        data = build_dataset("imagenet", data_root=str(root), loader_workers=0)
        folders = (root / "train", root / "val")
        for backend in available_decoders():
            result["per_worker"][backend] = {}
            for name, view in PIPELINES.items():
                decoder = Decoder(folders, (data.train, data.train), (view, view), backend)
                result["per_worker"][backend][name] = per_worker(decoder, args.images, 32, args.rounds)
        files = [folders[0] / f.decode() for f in data.train.files[:min(args.images, 128)]]
        result["decoders_rrc224"] = alternatives(files, args.rounds)
        if args.workers:
            result[f"loader_{args.workers}_workers"] = loader_rate(root, args.workers, 32, args.rounds)
    result["host_ops_per_step"] = host_ops()
    if args.device.startswith("cuda"):
        result["gpu_images_per_s"] = gpu_steps(args.device, args.steps, 32)
        result["workers_needed"] = {}
        for backend, rates in result["per_worker"].items():
            rrc, jig = (rates[k] for k in ("supervised, rotation, colorization (train)", "jigsaw (train)"))
            result["workers_needed"][backend] = {k: v / (jig if k == "jigsaw" else rrc)
                                                 for k, v in result["gpu_images_per_s"].items()}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
