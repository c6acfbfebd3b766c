"""Generate the small reference assets the example briefs use (deterministic; a few hundred KB).

    python examples/make_assets.py [--out examples/briefs/assets]

Two sets, one per example brief:

- lumen-fizz.yaml: a presenter portrait (the astronaut photo that ships with scikit-image: the built-in
  model's own training face) and a product packshot (RGBA PNG: the can alone, its wordmark legible, on a
  transparent background), a short motion clip of the product bouncing (MP4), and an 8-second 120 BPM
  music bed with kick, hi-hat and a bass line (M4A).
- harbor-roast.yaml, references the model has never seen: Grace Hopper's official U.S. Navy portrait
  (public domain, a work of the U.S. federal government; it ships as matplotlib's sample data
  ``grace_hopper.jpg``: ``pip install matplotlib`` to regenerate it) and a coffee cup cut out of
  scikit-image's ``coffee`` photo (CC0, Rachel Michetti) on a transparent background, with its own
  bouncing clip; the music bed is shared.

Drawn with numpy, written with PyAV, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from syncreel.model.world import FACE_CROP

LIME = (0x9B, 0xE5, 0x64)
TEAL = (0x0F, 0x6E, 0x73)
CREAM = (0xF6, 0xF1, 0xE4)


def presenter(size: int = 384) -> np.ndarray:
    """The presenter: the astronaut portrait that ships with scikit-image (a real face, as in the
    built-in model's world, so the generated presenter and the lip-sync QA have a face to work with)."""
    from skimage import data
    from skimage.transform import resize

    top, bottom, left, right = FACE_CROP
    crop = data.astronaut()[top:bottom, left:right]
    return (resize(crop, (size, size), anti_aliasing=True) * 255).round().astype(np.uint8)


def product(height: int = 384, width: int = 288) -> np.ndarray:
    """The packshot: a drinks can on a transparent background, (height, width, 4) RGBA — body, lid, a
    teal label band with the brand's wordmark and a lime roundel, a highlight. Drawn at 4× and reduced,
    so the edges and the lettering are smooth; transparent pixels keep white underneath (a viewer or a
    converter that drops the alpha shows the can on white, and the compositor keys that white out)."""
    scale = 4
    big_h, big_w = height * scale, width * scale
    can = Image.new("RGBA", (big_w, big_h), (255, 255, 255, 0))
    draw = ImageDraw.Draw(can)
    left, right = big_w * 0.28, big_w * 0.72
    top, bottom = big_h * 0.06, big_h * 0.96
    rim = big_h * 0.035
    draw.rounded_rectangle((left, top, right, bottom), radius=rim * 1.6, fill=(0xE6, 0xE9, 0xEC, 255))
    draw.ellipse((left, top - rim, right, top + rim), fill=(0xB8, 0xBE, 0xC4, 255))
    draw.ellipse((left + rim, top - rim * 0.55, right - rim, top + rim * 0.55), fill=(0xA0, 0xA7, 0xAE, 255))
    highlight = (left + (right - left) * 0.08, top + rim * 2, left + (right - left) * 0.13, bottom - rim * 2)
    draw.rectangle(highlight, fill=(0xF7, 0xF8, 0xF9, 255))
    band_top, band_bottom = big_h * 0.30, big_h * 0.74
    draw.rectangle((left, band_top, right, band_bottom), fill=(*TEAL, 255))
    middle = (left + right) / 2
    radius = (right - left) * 0.17
    roundel_y = band_top + (band_bottom - band_top) * 0.24
    draw.ellipse((middle - radius, roundel_y - radius, middle + radius, roundel_y + radius), fill=(*LIME, 255))
    draw.ellipse(
        (middle - radius * 0.45, roundel_y - radius * 0.45, middle + radius * 0.45, roundel_y + radius * 0.45),
        fill=(*CREAM, 255),
    )
    font = ImageFont.load_default(size=int((right - left) * 0.2))
    for word, share in (("LUMEN", 0.56), ("FIZZ", 0.80)):
        draw.text((middle, band_top + (band_bottom - band_top) * share), word, fill=(*CREAM, 255), font=font,
                  anchor="mm")  # fmt: skip
    small = ImageFont.load_default(size=int((right - left) * 0.085))
    draw.text((middle, big_h * 0.83), "SPARKLING  330 ml", fill=(*TEAL, 255), font=small, anchor="mm")
    packshot = np.asarray(can.resize((width, height), Image.Resampling.LANCZOS)).copy()
    packshot[packshot[..., 3] == 0, :3] = 255
    return packshot


def hopper(size: int = 384) -> np.ndarray:
    """The second presenter: Grace Hopper's portrait (matplotlib's sample data), head and shoulders
    cropped square. Read from the installed package's folder without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        raise SystemExit("the second example's presenter is matplotlib's sample photo: pip install matplotlib")
    path = Path(spec.origin).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as photo:  # (600, 512): the mouth near (268, 275), the chin near y = 332
        crop = photo.convert("RGB").crop((0, 30, 512, 542))
    return np.asarray(crop.resize((size, size), Image.Resampling.LANCZOS)).copy()


def cup(height: int = 288) -> np.ndarray:
    """The second packshot: the cup and saucer of scikit-image's ``coffee`` photo, cut out along an
    ellipse around the saucer (RGBA, a soft one-pixel edge, white under the transparent pixels)."""
    from skimage import data

    top, bottom, left, right = 10, 390, 60, 520  # the cup and saucer in the (400, 600) photo
    crop = data.coffee()[top:bottom, left:right]
    yy, xx = np.mgrid[0 : crop.shape[0], 0 : crop.shape[1]].astype(np.float32)
    cy, cx = (crop.shape[0] - 1) / 2, (crop.shape[1] - 1) / 2
    radius = np.hypot((yy - cy) / (crop.shape[0] / 2), (xx - cx) / (crop.shape[1] / 2))
    alpha = np.clip((1 - radius) * crop.shape[0] / 2, 0, 1)  # one pixel of soft edge
    rgba = np.concatenate([crop, np.round(alpha * 255).astype(np.uint8)[..., None]], axis=-1)
    width = round(crop.shape[1] * height / crop.shape[0])
    packshot = np.asarray(Image.fromarray(rgba, "RGBA").resize((width, height), Image.Resampling.LANCZOS)).copy()
    packshot[packshot[..., 3] == 0, :3] = 255
    return packshot


def write_png(frame: np.ndarray, path: Path) -> None:
    """RGB or RGBA (H, W, 3 | 4) uint8 → PNG."""
    pixel_format = "rgba" if frame.shape[-1] == 4 else "rgb24"
    with av.open(str(path), "w", format="image2", options={"update": "1"}) as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], pixel_format
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=pixel_format)):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def bouncing_clip(
    path: Path,
    seconds: float = 3.0,
    fps: int = 24,
    width: int = 320,
    height: int = 180,
    packshot: np.ndarray | None = None,
) -> None:
    """The product (``packshot``, the can by default) bouncing left to right: a motion reference with
    clear, periodic impacts."""
    can = product(96, 72) if packshot is None else packshot
    alpha = can[..., 3:4].astype(np.float32) / 255.0
    can_h, can_w = can.shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "28", "preset": "medium"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(int(seconds * fps)):
            t = index / fps
            frame = np.empty((height, width, 3), np.uint8)
            frame[:] = LIME
            x = int((width - can_w) * t / seconds)
            y = int((height - can_h) * (1 - abs(np.sin(np.pi * t * 2))))  # two bounces a second
            spot = frame[y : y + can_h, x : x + can_w].astype(np.float32)
            frame[y : y + can_h, x : x + can_w] = np.round(can[..., :3] * alpha + spot * (1 - alpha)).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def music_bed(seconds: float = 8.0, rate: int = 44_100, bpm: float = 120.0) -> np.ndarray:
    """Kick on every beat, hi-hat on the off-beats, a bass line on the downbeats. (2, N) float32."""
    t = np.arange(int(seconds * rate)) / rate
    beat = 60.0 / bpm
    out = np.zeros_like(t)
    rng = np.random.default_rng(7)
    for index in range(int(seconds / beat)):
        start = index * beat
        k = (t >= start) & (t < start + 0.25)
        tk = t[k] - start
        out[k] += 0.9 * np.sin(2 * np.pi * (50 + 90 * np.exp(-tk * 30)) * tk) * np.exp(-tk * 12)
        h = (t >= start + beat / 2) & (t < start + beat / 2 + 0.05)
        out[h] += 0.15 * rng.standard_normal(h.sum()) * np.exp(-(t[h] - start - beat / 2) * 80)
        if index % 4 == 0:
            b = (t >= start) & (t < start + 4 * beat)
            note = (55.0, 65.4, 49.0, 73.4)[(index // 4) % 4]
            out[b] += 0.25 * np.sin(2 * np.pi * note * (t[b] - start)) * np.exp(-(t[b] - start) * 0.6)
    out /= np.abs(out).max() / 0.7
    return np.stack([out, np.roll(out, 220)]).astype(np.float32)


def write_m4a(audio: np.ndarray, rate: int, path: Path) -> None:
    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=rate, layout="stereo")
        stream.bit_rate = 96_000
        chunk = 1024
        for start in range(0, audio.shape[1], chunk):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(audio[:, start : start + chunk]), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_assets(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "presenter.png", out / "can.png", out / "bounce.mp4", out / "music.m4a"]
    write_png(presenter(), paths[0])
    write_png(product(), paths[1])
    bouncing_clip(paths[2])
    write_m4a(music_bed(), 44_100, paths[3])
    second = [out / "hopper.png", out / "cup.png", out / "cup-bounce.mp4"]
    write_png(hopper(), second[0])
    write_png(cup(), second[1])
    small = np.asarray(Image.fromarray(cup()).resize((92, 76), Image.Resampling.LANCZOS)).copy()
    bouncing_clip(second[2], packshot=small)
    return paths + second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "briefs" / "assets")
    for path in make_assets(parser.parse_args().out):
        print(f"{path}  {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
