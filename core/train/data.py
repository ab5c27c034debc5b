"""Training and validation data: real dense stacks and brackets rendered from HDR radiance maps, split by scene.

Every scene is a stack of N frames (darkest first) with a reference: the exposure fusion (Mertens) of ALL its
frames. A model sees only k ∈ {2, 3} of them, so it has to recover from a sparse bracket what a dense one gives.
Sources: `brackets/<source>/<scene>/` (hdrps, forth, deepfuse) and `hdr/<folder>/<name>.exr`, rendered here into
a 1-stop stack through a random camera response with noise and 8-bit quantisation."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from lutfuse.core.classical import mertens
from lutfuse.core.colour import luma
from lutfuse.core.layout import to_planar

SPLIT_PATH = Path(__file__).with_name("split.json")
VAL_EVERY = 5            # every 5th scene of each source (sorted by key, offset 2) is validation
CACHE_VERSION = 2        # bump when loading or rendering changes, so stale caches are not reused
HDR_VARIANTS = 2         # rendered stacks per HDR map in the train split (different exposure and camera)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}


@dataclass
class Scene:
    """One real stack or one rendered HDR stack at working resolution, with its dense-stack reference."""

    key: str
    frames: np.ndarray       # N×H×W×3 float32 in [0,1], darkest first
    reference: np.ndarray    # H×W×3 float32 in [0,1]: Mertens fusion of all N frames


# ---------------------------------------------------------------- split

def scene_keys(data_root: str | Path) -> list[str]:
    """All scene keys of the shared data: 'hdrps/Cades_Cove', ..., 'hdr/openexr/Bonita', sorted."""
    root = Path(data_root)
    manifest = json.loads((root / "brackets" / "manifest.json").read_text())
    keys = [f"{m['source']}/{m['scene']}" for m in manifest]
    keys += [f"hdr/{p.parent.name}/{p.stem}" for p in (root / "hdr").glob("*/*.exr")]
    return sorted(keys)


def make_split(keys: Sequence[str]) -> dict[str, list[str]]:
    """Deterministic split by scene, stratified by source: every VAL_EVERY-th key of a source is validation."""
    by_source: dict[str, list[str]] = {}
    for k in sorted(keys):
        by_source.setdefault(k.rsplit("/", 1)[0], []).append(k)
    split: dict[str, list[str]] = {"train": [], "val": []}
    for group in by_source.values():
        for i, k in enumerate(group):
            split["val" if i % VAL_EVERY == 2 else "train"].append(k)
    return {name: sorted(v) for name, v in split.items()}


def load_split() -> dict[str, list[str]]:
    """The committed split (core/train/split.json): {"train": [...], "val": [...]} of scene keys."""
    return json.loads(SPLIT_PATH.read_text())


# ---------------------------------------------------------------- loading

def _resize(image: np.ndarray, max_side: int) -> np.ndarray:
    """Area-downsample H×W×C so the longer side is at most max_side."""
    f = max_side / max(image.shape[:2])
    if f >= 1.0:
        return image
    return cv2.resize(image, (max(1, round(image.shape[1] * f)), max(1, round(image.shape[0] * f))),
                      interpolation=cv2.INTER_AREA)


def load_real_stack(folder: Path, max_side: int) -> np.ndarray:
    """The frames of one bracket folder -> N×H×W×3 float32 RGB in [0,1], darkest first (file order)."""
    from lutfuse.core.bracket import load_image

    paths = sorted(q for q in folder.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
    return np.stack([_resize(load_image(p)[0], max_side) for p in paths])


def load_radiance(path: Path) -> np.ndarray:
    """An OpenEXR radiance map -> H×W×3 float32 linear, non-negative, finite."""
    import OpenEXR

    with OpenEXR.File(str(path)) as f:
        channels = f.parts[0].channels
        name = "RGB" if "RGB" in channels else "RGBA"
        rgb = np.asarray(channels[name].pixels, np.float32)[..., :3]
    return np.nan_to_num(np.clip(rgb, 0.0, None), nan=0.0, posinf=0.0)


def camera_response(linear: np.ndarray, gamma: float, shoulder: float) -> np.ndarray:
    """A camera-like tone curve on clipped linear values in [0,1] -> [0,1]: power 1/gamma and a highlight shoulder."""
    y = np.power(np.clip(linear, 0.0, 1.0), 1.0 / gamma)
    return y * (1.0 + shoulder - shoulder * y)


def render_bracket(radiance: np.ndarray, evs: Sequence[float], rng: np.random.Generator,
                   gamma: float = 2.2, shoulder: float = 0.06) -> np.ndarray:
    """HDR radiance H×W×3 (scaled so 1.0 is white at EV 0) -> N×H×W×3 float32 in [0,1], 8-bit quantised frames
    with shot and read noise through one camera response."""
    frames = []
    photons = float(rng.uniform(1500, 8000))   # full-well scale: sensor noise differs between cameras
    read = float(rng.uniform(0.0005, 0.003))
    for ev in evs:
        linear = np.clip(radiance * 2.0 ** ev, 0.0, 4.0)
        linear = rng.poisson(linear * photons).astype(np.float32) / photons
        linear += rng.normal(0.0, read, linear.shape).astype(np.float32)
        y = camera_response(linear, gamma, shoulder)
        frames.append(np.round(y * 255.0) / 255.0)
    return np.stack(frames).astype(np.float32)


def _seed(key: str, variant: int) -> int:
    """A stable per-scene seed (Python's hash() is salted per process)."""
    return zlib.crc32(f"{key}#{variant}".encode())


def render_hdr_scene(radiance: np.ndarray, key: str, variant: int) -> np.ndarray:
    """A dense 1-stop stack covering the radiance map's range, with a random camera -> N×H×W×3 float32 in [0,1]."""
    rng = np.random.default_rng(_seed(key, variant))
    lum = luma(radiance)
    lum = lum[lum > 0]
    hi = float(np.percentile(lum, 99.5)) if lum.size else 1.0
    lo = float(np.percentile(lum, 2.0)) if lum.size else 1.0
    # darkest frame keeps the brightest 0.5 % just below clipping; the brightest lifts the 2 % shadows to mid-grey
    ev_dark = -np.log2(hi) + rng.uniform(-0.5, 0.5)
    ev_bright = np.log2(0.18 / max(lo, 1e-6)) + rng.uniform(-0.5, 0.5)
    n = int(np.clip(np.ceil(ev_bright - ev_dark) + 1, 5, 9))
    evs = np.linspace(ev_dark, max(ev_bright, ev_dark + 4.0), n)
    gamma, shoulder = float(rng.uniform(1.8, 2.6)), float(rng.uniform(0.0, 0.12))
    return render_bracket(radiance, evs, rng, gamma, shoulder)  # type: ignore[arg-type]


def _scene_from_frames(key: str, frames: np.ndarray) -> Scene:
    """Wrap a stack with its Mertens-of-all-frames reference."""
    return Scene(key, frames, mertens(frames).astype(np.float32))


def load_scene(data_root: str | Path, key: str, *, variant: int = 0, max_side: int = 512,
               cache_dir: str | Path | None = None) -> Scene:
    """One scene by key (variant > 0: another rendering of an HDR map), cached as .npz when cache_dir is given."""
    root = Path(data_root)
    name = key if variant == 0 else f"{key}#{variant}"
    cache = None
    if cache_dir is not None:
        digest = hashlib.sha1(f"{name}|{max_side}|{CACHE_VERSION}".encode()).hexdigest()[:16]
        cache = Path(cache_dir) / f"{digest}.npz"
        if cache.is_file():
            with np.load(cache) as z:
                return Scene(name, z["frames"], z["reference"])
    if key.startswith("hdr/"):
        radiance = _resize(load_radiance(root / f"{key}.exr"), max_side)
        frames = render_hdr_scene(radiance, key, variant)
    else:
        frames = load_real_stack(root / "brackets" / key, max_side)
    scene = _scene_from_frames(name, frames)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, frames=scene.frames, reference=scene.reference)
        tmp.replace(cache)
    return scene


def load_scenes(data_root: str | Path, split: str, *, max_side: int = 512,
                cache_dir: str | Path | None = None) -> list[Scene]:
    """The scenes of one split ("train" or "val"); HDR maps give HDR_VARIANTS renderings in the train split."""
    scenes = []
    for key in load_split()[split]:
        variants = HDR_VARIANTS if (key.startswith("hdr/") and split == "train") else 1
        for v in range(variants):
            scenes.append(load_scene(data_root, key, variant=v, max_side=max_side, cache_dir=cache_dir))
    return scenes


# ---------------------------------------------------------------- samples

def pick_inputs(n_frames: int, k: int, rng: np.random.Generator | None = None) -> list[int]:
    """Indices (darkest first) of k ∈ {2, 3} inputs of an n-frame stack: an under and an over frame near the
    extremes (jittered by up to 2 steps inward when rng is given, keeping ≥ 2 steps between them) and for k=3
    the frame halfway between them. Deterministic (the extremes) without rng."""
    if n_frames < 2:
        raise ValueError("a stack needs at least 2 frames")
    lo, hi = 0, n_frames - 1
    if rng is not None and n_frames >= 5:
        lo = int(rng.integers(0, 3))
        hi = n_frames - 1 - int(rng.integers(0, 3))
        if hi - lo < 2:
            lo, hi = 0, n_frames - 1
    if k == 2 or hi - lo < 2:
        return [lo, hi]
    return [lo, (lo + hi) // 2, hi]


def middle_index(inputs: Sequence[int]) -> int:
    """The real frame halfway between the darkest and brightest input (the intermediate exposure's target)."""
    return (inputs[0] + inputs[-1]) // 2


Extras = Callable[[int, list[int]], dict[str, np.ndarray]]   # (scene index, input indices) -> H×W×3 planes


class FusionDataset(torch.utils.data.Dataset):
    """Random square crops of the scenes with flips and k ∈ {2, 3} inputs. Item: inputs K×3×h×w, reference 3×h×w,
    middle 3×h×w (the real exposure halfway between the extremes), k; values in [0,1]. `extras(scene index,
    input indices)` may add whole-scene H×W×3 planes (e.g. a generated middle), cropped and flipped alike."""

    def __init__(self, scenes: list[Scene], crop: int = 256, seed: int = 0, per_scene: int = 50,
                 extras: Extras | None = None) -> None:
        self.scenes, self.crop, self.per_scene, self.extras = scenes, crop, per_scene, extras
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.scenes) * self.per_scene

    def __getitem__(self, i: int) -> dict:
        s = i % len(self.scenes)
        sc, rng = self.scenes[s], self.rng
        k = int(rng.integers(2, 4))
        idx = pick_inputs(len(sc.frames), k, rng)
        k = len(idx)
        h, w = sc.frames.shape[1:3]
        c = min(self.crop, h, w)
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        planes = {"inputs": sc.frames[idx], "reference": sc.reference, "middle": sc.frames[middle_index(idx)]}
        if self.extras is not None:
            planes.update(self.extras(s, idx))
        # every plane is ...×H×W×3: crop and flip the last three axes alike
        planes = {name: a[..., y:y + c, x:x + c, :] for name, a in planes.items()}
        if rng.random() < 0.5:
            planes = {name: a[..., :, ::-1, :] for name, a in planes.items()}
        if rng.random() < 0.5:
            planes = {name: a[..., ::-1, :, :] for name, a in planes.items()}
        return {name: to_planar(a) for name, a in planes.items()} | {"k": k}


def scene_cases(scene: Scene) -> list[dict]:
    """The validation cases of one scene: k=2 (extremes) and, when it has a frame between them, k=3 (+ middle).
    Case: key, inputs K×H×W×3, reference H×W×3, middle H×W×3 (float32 in [0,1]), k, stack_frames."""
    cases = []
    n = len(scene.frames)
    for k in (2, 3):
        idx = pick_inputs(n, k, None)
        if len(idx) != k:
            continue
        cases.append({"key": scene.key, "inputs": scene.frames[idx], "reference": scene.reference,
                      "middle": scene.frames[middle_index(idx)], "k": k, "stack_frames": n})
    return cases


def validation_cases(data_root: str | Path, *, max_side: int = 512,
                     cache_dir: str | Path | None = None) -> list[dict]:
    """Deterministic validation set: scene_cases of every val scene, in split order."""
    return [case for sc in load_scenes(data_root, "val", max_side=max_side, cache_dir=cache_dir)
            for case in scene_cases(sc)]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m lutfuse.core.train.data DATA_DIR`: (re)write split.json from the scenes found under DATA_DIR."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("data", type=Path)
    args = parser.parse_args(argv)
    split = make_split(scene_keys(args.data))
    SPLIT_PATH.write_text(json.dumps(split, indent=1) + "\n")
    print(f"{SPLIT_PATH}: {len(split['train'])} train, {len(split['val'])} val scenes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
