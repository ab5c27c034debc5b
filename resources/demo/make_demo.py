"""Make the demo bracket: a procedurally built room with a window onto a CC0 HDRI, exposed at EV -2, 0, +2.

Run from the repository root (needs the Debian package `blender-data` for the CC0 forest HDRI):

    python3 resources/demo/make_demo.py [--hdri /usr/share/blender/datafiles/studiolights/world/forest.exr]

The room (walls, floor planks, curtains, rug, a painting, the sun patch and its mullion shadows) is ray-cast
here in linear radiance; the view through the window is the HDRI. Each frame is that radiance times 2**EV
through a camera-like tone curve with shot noise, 8-bit JPEG q90 with EXIF (1/250, 1/60, 1/15 s, f/8, ISO 100),
so `core.bracket` orders the frames from EXIF. Deterministic (fixed seed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import piexif

OUT = Path(__file__).resolve().parent
HDRI = Path("/usr/share/blender/datafiles/studiolights/world/forest.exr")
WIDTH, HEIGHT, SUPER = 1200, 800, 2
# (exposure time as an EXIF rational, EV relative to the middle frame); f/8 and ISO 100 throughout
EXPOSURES = (((1, 250), -2.0), ((1, 60), 0.0), ((1, 15), 2.0))
# Room box in camera space: camera at the origin looking +Z, floor Y=-1, ceiling Y=1.6, side walls X=±3, back Z=5.
FLOOR, CEIL, SIDE, BACK = -1.0, 2.4, 3.0, 5.0
WIN_X, WIN_Y = (-1.25, 1.05), (-0.25, 1.1)          # window opening on the back wall
SKY = 3.0                                             # mean radiance seen through the glass
MULLION = 0.05                                        # half width of the window bars
SUN = np.array([0.35, 0.55, 1.0]) / np.linalg.norm([0.35, 0.55, 1.0])  # towards the sun, through the window


def noise(rng: np.random.Generator, h: int, w: int, scales=(4, 16, 64), weights=(0.5, 0.3, 0.2)) -> np.ndarray:
    """Smooth value noise in about [-1, 1]: random grids at a few scales, upsampled bicubically and summed."""
    out = np.zeros((h, w), np.float32)
    for s, wt in zip(scales, weights):
        g = rng.standard_normal((max(2, h // s), max(2, w // s))).astype(np.float32)
        out += wt * cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
    return out


def load_hdri(path: Path) -> np.ndarray:
    """Equirectangular radiance map H×W×3 float32 (OpenEXR)."""
    import OpenEXR

    with OpenEXR.File(str(path)) as f:
        return np.asarray(f.parts[0].channels["RGB"].pixels, np.float32)


def sample_hdri(hdri: np.ndarray, d: np.ndarray, yaw: float) -> np.ndarray:
    """Radiance of the HDRI in directions d (...×3, camera space, Y up), bilinear, blurred like a far background."""
    h, w = hdri.shape[:2]
    lon = np.arctan2(d[..., 0], d[..., 2]) + yaw
    lat = np.arcsin(np.clip(d[..., 1] / np.linalg.norm(d, axis=-1), -1, 1))
    mx = ((lon / (2 * np.pi) + 0.5) % 1.0) * w
    my = (0.5 - lat / np.pi) * h
    soft = cv2.GaussianBlur(hdri, (0, 0), 0.8)  # out of focus beyond the glass: hides the map's low resolution
    return cv2.remap(soft, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


def in_window_glass(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True where a back-wall point (x, y) is glass (inside the opening, off the frame and the cross bars)."""
    inside = (x > WIN_X[0] + 0.08) & (x < WIN_X[1] - 0.08) & (y > WIN_Y[0] + 0.08) & (y < WIN_Y[1] - 0.08)
    cx, cy = (WIN_X[0] + WIN_X[1]) / 2, WIN_Y[0] + 0.62 * (WIN_Y[1] - WIN_Y[0])
    bars = (np.abs(x - cx) < MULLION) | (np.abs(y - cy) < MULLION * 0.8)
    return inside & ~bars


def window_irradiance(p: np.ndarray, n: np.ndarray, sky: float) -> np.ndarray:
    """Diffuse light a surface point p with normal n gets from the window, treated as an area light (8×8 samples)."""
    total = np.zeros(p.shape[:-1], np.float32)
    xs = np.linspace(WIN_X[0] + 0.15, WIN_X[1] - 0.15, 8)
    ys = np.linspace(WIN_Y[0] + 0.15, WIN_Y[1] - 0.15, 8)
    area = (WIN_X[1] - WIN_X[0]) * (WIN_Y[1] - WIN_Y[0]) / 64
    for wx in xs:
        for wy in ys:
            v = np.array([wx, wy, BACK], np.float32) - p
            r2 = np.maximum((v**2).sum(-1), 0.05)
            v /= np.sqrt(r2)[..., None]
            cos_p = np.clip((v * n).sum(-1), 0, None)
            cos_w = np.clip(v[..., 2], 0, None)  # window faces -Z, i.e. into the room
            total += cos_p * cos_w / r2 * area
    return sky * total / np.pi


def render_radiance(hdri: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Linear radiance of the room at WIDTH×HEIGHT, H×W×3 float32 (supersampled SUPER× per side)."""
    h, w = HEIGHT * SUPER, WIDTH * SUPER
    tan = np.tan(np.radians(36))
    u = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
    v = 1 - (np.arange(h, dtype=np.float32) + 0.5) / h * 2
    dx, dy = np.meshgrid(u * tan, v * tan * h / w)
    d = np.stack([dx, dy + 0.06, np.ones_like(dx)], -1)   # camera tilted slightly up
    # distance along each ray to each of the box's planes; the nearest positive hit wins
    with np.errstate(divide="ignore", invalid="ignore"):
        t_planes = np.stack([
            np.where(d[..., 1] < 0, FLOOR / d[..., 1], np.inf),
            np.where(d[..., 1] > 0, CEIL / d[..., 1], np.inf),
            np.where(d[..., 0] < 0, -SIDE / d[..., 0], np.inf),
            np.where(d[..., 0] > 0, SIDE / d[..., 0], np.inf),
            BACK / d[..., 2],
        ])
    which = np.argmin(t_planes, 0)
    t = np.min(t_planes, 0)
    p = d * t[..., None]
    normals = np.array([[0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, -1]], np.float32)
    n = normals[which]
    X, Y, Z = p[..., 0], p[..., 1], p[..., 2]

    sky = SKY
    # direct light from the window, doubled for the light the walls and floor bounce back, plus an even fill
    light = 2.0 * window_irradiance(p, n, sky) + 0.08
    # the sun through the glass: trace each point towards the sun to the back wall and test the panes
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (BACK - Z) / SUN[2]
    hx, hy = X + SUN[0] * s, Y + SUN[1] * s
    facing = np.clip((n * SUN.astype(np.float32)).sum(-1), 0, None)
    sunlit = in_window_glass(hx, hy) & (which != 4) & (facing > 0)
    sunlit = cv2.GaussianBlur(sunlit.astype(np.float32), (0, 0), 2.5 * SUPER)  # soft shadow edges
    light = light + 12.0 * sunlit * facing

    albedo = np.empty(p.shape, np.float32)
    grain = noise(rng, h, w, scales=(2, 8, 32), weights=(0.3, 0.4, 0.3))
    # back wall and side walls: warm plaster with a soft mottle
    wall = np.array([0.62, 0.54, 0.45], np.float32) * (1 + 0.04 * grain)[..., None]
    albedo[:] = wall
    albedo[which >= 2] = (wall * np.array([0.95, 0.97, 1.0], np.float32))[which >= 2]
    albedo[which == 1] = np.array([0.7, 0.7, 0.68], np.float32)
    # floor: oak planks along Z with per-plank tone and a stretched grain
    floor = which == 0
    plank = np.floor(X / 0.28 + 40).astype(np.int32)
    joint = np.abs(((X / 0.28) % 1.0) - 0.5) > 0.485
    tone = (np.sin(plank * 12.9898) * 43758.5453) % 1.0
    streak = np.sin(Z * 3.0 + plank * 1.7 + 6 * np.sin(X * 9.0 + Z * 0.7)) * 0.5 + 0.5
    wood = np.stack([0.42 + 0.1 * tone, 0.27 + 0.06 * tone, 0.15 + 0.03 * tone], -1)
    wood *= (0.85 + 0.15 * streak)[..., None]
    wood[joint] *= 0.35
    albedo[floor] = wood[floor]
    # rug on the floor: deep red field, a gold border, a navy medallion
    rx, rz = X + 0.1, Z - 3.0
    rug = floor & (np.abs(rx) < 1.5) & (np.abs(rz) < 0.95)
    border = rug & ((np.abs(rx) > 1.32) | (np.abs(rz) > 0.78))
    medal = rug & ((rx / 0.75) ** 2 + (rz / 0.45) ** 2 < 1)
    pattern = 0.5 + 0.5 * np.cos(rx * 18) * np.cos(rz * 18)
    albedo[rug] = (np.array([0.45, 0.06, 0.05], np.float32) * (0.8 + 0.2 * pattern[..., None]))[rug]
    albedo[border] = np.array([0.6, 0.45, 0.12], np.float32)
    albedo[medal] = (np.array([0.06, 0.1, 0.32], np.float32) * (0.8 + 0.4 * pattern[..., None]))[medal]
    # a framed painting on the back wall, right of the window: a sunset over hills in saturated colours
    back = which == 4
    px, py = (X - 2.38) / 0.5, (Y - 0.4) / 0.55
    frame = back & (np.abs(px) < 1.12) & (np.abs(py) < 1.1)
    canvas = back & (np.abs(px) < 1.0) & (np.abs(py) < 1.0)
    albedo[frame] = np.array([0.08, 0.05, 0.03], np.float32)
    t_sky = np.clip((py + 1) / 2, 0, 1)[..., None]
    art = (1 - t_sky) * np.array([0.85, 0.35, 0.1], np.float32) + t_sky * np.array([0.15, 0.3, 0.75], np.float32)
    hills = py < -0.2 + 0.25 * np.sin(px * 3.1 + 0.5)
    art[hills] = np.array([0.1, 0.35, 0.12], np.float32)
    sun_disc = (px - 0.35) ** 2 + (py + 0.05) ** 2 < 0.03
    art[sun_disc] = np.array([0.95, 0.85, 0.3], np.float32)
    albedo[canvas] = art[canvas]
    # curtains: heavy green-blue velvet either side of the window, folds as a cosine in X
    curtain = back & (((X > WIN_X[0] - 0.75) & (X < WIN_X[0] + 0.1)) | ((X > WIN_X[1] - 0.1) & (X < WIN_X[1] + 0.75)))
    curtain &= (Y > FLOOR + 0.05) & (Y < WIN_Y[1] + 0.35)
    fold = 0.55 + 0.45 * np.cos(X * 28) ** 2
    albedo[curtain] = (np.array([0.07, 0.22, 0.25], np.float32) * fold[..., None])[curtain]

    radiance = albedo * light[..., None]
    # the skirting board: a dark strip where the walls meet the floor
    radiance[(which >= 2) & (Y < FLOOR + 0.12)] *= 0.5
    # the window: frame and bars are painted white wood lit from the room, glass shows the HDRI
    opening = back & (X > WIN_X[0]) & (X < WIN_X[1]) & (Y > WIN_Y[0]) & (Y < WIN_Y[1]) & ~curtain
    glass = back & in_window_glass(X, Y) & ~curtain
    outdoor = sample_hdri(hdri, d, yaw=np.radians(-40))
    outdoor *= sky / max(float(outdoor[glass].mean()), 1e-6)
    wood_lit = np.array([0.8, 0.78, 0.74], np.float32) * (0.35 + light[..., None] * 0.6)
    radiance[opening & ~glass] = wood_lit[opening & ~glass]
    radiance[glass] = outdoor[glass]
    # a lens vignette, then back to the output size (area average = antialiasing)
    vig = 1 - 0.25 * (u[None, :] ** 2 + (v[:, None] * 0.8) ** 2)
    radiance *= vig[..., None]
    return cv2.resize(radiance, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


def expose(radiance: np.ndarray, ev: float, rng: np.random.Generator, gain: float) -> np.ndarray:
    """One 8-bit frame: radiance × gain × 2**ev with shot and read noise, through a camera-like tone curve."""
    linear = radiance * gain * 2.0**ev
    photons = 4000.0  # full-well scale: noise is visible in the shadows of the dark frame, as on a real sensor
    linear = rng.poisson(np.clip(linear, 0, 4) * photons).astype(np.float32) / photons
    linear += rng.normal(0, 0.0015, linear.shape).astype(np.float32)
    x = np.clip(linear, 0, 1)
    # sRGB-like gamma with a gentle shoulder so highlights roll off before they clip, like an in-camera JPEG
    y = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    y = y * (1.06 - 0.06 * y)
    return np.clip(np.round(y * 255), 0, 255).astype(np.uint8)


def exif_bytes(exposure: tuple[int, int]) -> bytes:
    """EXIF with ExposureTime, FNumber f/8 and ISO 100 (what core.bracket reads to order frames)."""
    exif = {
        "0th": {piexif.ImageIFD.Make: b"LUTFuse", piexif.ImageIFD.Model: b"demo renderer",
                piexif.ImageIFD.Software: b"resources/demo/make_demo.py"},
        "Exif": {piexif.ExifIFD.ExposureTime: exposure, piexif.ExifIFD.FNumber: (8, 1),
                 piexif.ExifIFD.ISOSpeedRatings: 100, piexif.ExifIFD.ExposureProgram: 1},
    }
    return piexif.dump(exif)


def main() -> int:
    """Render the radiance once, write 00.jpg (darkest), 01.jpg, 02.jpg with EXIF into resources/demo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hdri", type=Path, default=HDRI, help="CC0 equirectangular .exr seen through the window")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rng = np.random.default_rng(2024)
    radiance = render_radiance(load_hdri(args.hdri), rng)
    # the dark frame exposes the view through the window (its mean at 0.3 linear); the room is then ~5 stops down
    gain = 4 * 0.3 / SKY
    print(f"room median {np.median(radiance) * gain:.3f} linear at EV 0")
    for i, (exposure, ev) in enumerate(EXPOSURES):
        frame = expose(radiance, ev, rng, gain)
        path = args.out / f"{i:02d}.jpg"
        ok, data = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        path.write_bytes(data.tobytes())
        piexif.insert(exif_bytes(exposure), str(path))
        print(f"{path}  EV {ev:+.0f}  1/{exposure[1]} s  {path.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
