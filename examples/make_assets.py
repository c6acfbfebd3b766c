"""Generate the small reference assets the example briefs use (deterministic; a few hundred KB).

    python examples/make_assets.py [--out examples/briefs/assets]

A presenter portrait (a real face photo that ships with scikit-image) and a product shot (PNG), a
short motion clip of the product bouncing (MP4), and an 8-second 120 BPM music bed with kick, hi-hat
and a bass line (M4A). Drawn with numpy, written with PyAV, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from model.world import FACE_CROP

LIME = (0x9B, 0xE5, 0x64)
TEAL = (0x0F, 0x6E, 0x73)
CREAM = (0xF6, 0xF1, 0xE4)


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:height, 0:width].astype(np.float32)


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _paint(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> None:
    image[mask] = colour


def presenter(size: int = 384) -> np.ndarray:
    """The presenter: the astronaut portrait that ships with scikit-image (a real face, as in the
    built-in model's world, so the generated presenter and the lip-sync QA have a face to work with)."""
    from skimage import data
    from skimage.transform import resize

    top, bottom, left, right = FACE_CROP
    crop = data.astronaut()[top:bottom, left:right]
    return (resize(crop, (size, size), anti_aliasing=True) * 255).round().astype(np.uint8)


def product(height: int = 384, width: int = 288) -> np.ndarray:
    """A drinks can on a table: body, lid, label band, highlight."""
    yy, xx = _grid(height, width)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = LIME
    image[int(height * 0.8) :] = (0xC8, 0xB0, 0x8A)  # table
    body = (np.abs(xx - width / 2) < width * 0.22) & (yy > height * 0.2) & (yy < height * 0.82)
    _paint(image, body, (0xE6, 0xE9, 0xEC))
    _paint(image, _ellipse(yy, xx, height * 0.2, width / 2, height * 0.03, width * 0.22), (0xB8, 0xBE, 0xC4))
    band = body & (yy > height * 0.38) & (yy < height * 0.62)
    _paint(image, band, TEAL)
    _paint(image, band & _ellipse(yy, xx, height * 0.5, width / 2, height * 0.06, width * 0.12), LIME)
    _paint(image, body & (np.abs(xx - width * 0.37) < width * 0.02), (255, 255, 255))
    return image


def write_png(frame: np.ndarray, path: Path) -> None:
    with av.open(str(path), "w", format="image2", options={"update": "1"}) as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], "rgb24"
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def bouncing_clip(path: Path, seconds: float = 3.0, fps: int = 24, width: int = 320, height: int = 180) -> None:
    """The product bouncing left to right: a motion reference with clear, periodic impacts."""
    can = product(96, 72)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "28", "preset": "medium"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(int(seconds * fps)):
            t = index / fps
            frame = np.empty((height, width, 3), np.uint8)
            frame[:] = LIME
            x = int((width - 72) * t / seconds)
            y = int((height - 96) * (1 - abs(np.sin(np.pi * t * 2))))  # two bounces a second
            frame[y : y + 96, x : x + 72] = can
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
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "briefs" / "assets")
    for path in make_assets(parser.parse_args().out):
        print(f"{path}  {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
