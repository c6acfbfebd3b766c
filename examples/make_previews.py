"""What the example campaign delivers, as pictures a newcomer sees before running anything.

    python examples/make_previews.py [--deliverables DIR] [--out examples/previews]

Runs the example brief (examples/briefs/lumen-fizz.yaml) on the embedded defaults in a temporary
folder — or reads the deliverables a run already copied to ``DIR/<campaign>/`` — and writes:

- ``contact-youtube-en.png`` and ``contact-tiktok-en.png``: one frame a second of the English YouTube
  (16:9) and TikTok (9:16) cuts, each tile labelled with its time;
- ``spectrogram-youtube-en.png``: the English YouTube cut's sound, 0–8 kHz on a log-power scale, with
  the seconds marked, so the spoken lines, the music's beats and the effects can be told apart.

The README shows these files; run this script again whenever what the pipeline makes changes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw
from scipy.signal import spectrogram

from syncreel.schemas.settings import embedded_environment

ROOT = Path(__file__).resolve().parents[1]
BRIEF = ROOT / "examples" / "briefs" / "lumen-fizz.yaml"
CAMPAIGN = "lumen-fizz-launch"
TILE_HEIGHT = 180  # a tile's height in the contact sheet; its width follows the cut's aspect
COLUMNS = 6


def run_example(folder: Path) -> Path:
    """The example campaign's deliverables folder, after a run on embedded defaults under ``folder``."""
    env = {**os.environ, **embedded_environment(folder)}
    out = folder / "out"
    done = subprocess.run(
        [sys.executable, "-m", "syncreel.cli", "run", str(BRIEF), "--out", str(out)], env=env, cwd=ROOT
    )
    if done.returncode not in (0, 3):
        raise SystemExit(f"the example run failed (exit {done.returncode}); see its output above")
    return out / CAMPAIGN


def frames_per_second(path: Path) -> list[tuple[float, np.ndarray]]:
    """The first frame at or after each whole second, as (second, RGB array)."""
    picked: list[tuple[float, np.ndarray]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            at = float(frame.pts * stream.time_base)
            if at >= len(picked) - 1e-6:
                picked.append((at, frame.to_ndarray(format="rgb24")))
    return picked


def contact_sheet(path: Path, target: Path) -> None:
    frames = frames_per_second(path)
    height, width = frames[0][1].shape[:2]
    tile_w = round(TILE_HEIGHT * width / height)
    rows = -(-len(frames) // COLUMNS)
    sheet = Image.new("RGB", (COLUMNS * (tile_w + 4) + 4, rows * (TILE_HEIGHT + 4) + 4), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for index, (at, rgb) in enumerate(frames):
        x, y = 4 + (index % COLUMNS) * (tile_w + 4), 4 + (index // COLUMNS) * (TILE_HEIGHT + 4)
        sheet.paste(Image.fromarray(rgb).resize((tile_w, TILE_HEIGHT), Image.Resampling.LANCZOS), (x, y))
        draw.rectangle((x, y, x + 34, y + 14), fill=(0, 0, 0))
        draw.text((x + 3, y + 2), f"{at:4.1f}s", fill=(255, 255, 255))
    sheet.save(target, optimize=True)


def spectrogram_image(path: Path, target: Path, max_hz: float = 8000.0, height: int = 256) -> None:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [r.to_ndarray()[0] for f in container.decode(stream) for r in resampler.resample(f)]
    samples = np.concatenate(chunks)
    hop = rate // 100  # 10 ms a column
    freqs, times, power = spectrogram(samples, fs=rate, nperseg=hop * 4, noverlap=hop * 3, window="hann")
    power = power[freqs <= max_hz]
    level = 10 * np.log10(power + 1e-12)
    level = np.clip((level - (level.max() - 80)) / 80, 0, 1)[::-1]  # 80 dB of range, low frequencies at the bottom
    rows = np.linspace(0, level.shape[0] - 1, height).round().astype(int)
    level = level[rows]
    # a dark-to-bright palette: black → purple → orange → yellow-white
    stops = np.array([[0, 0, 0], [80, 20, 120], [220, 90, 40], [255, 240, 180]], np.float32)
    scaled = level * (len(stops) - 1)
    low = np.floor(scaled).astype(int).clip(0, len(stops) - 2)
    mix = (scaled - low)[..., None]
    rgb = (stops[low] * (1 - mix) + stops[low + 1] * mix).astype(np.uint8)
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    for second in range(int(times[-1]) + 1):
        x = int(second * 100)
        draw.line((x, height - 8, x, height - 1), fill=(255, 255, 255))
        draw.text((x + 2, 2), f"{second}s", fill=(255, 255, 255))
    draw.text((image.width - 60, height - 22), f"0–{max_hz / 1000:g} kHz", fill=(255, 255, 255))
    image.quantize(64).save(target, optimize=True)  # a palette keeps the noise floor's texture small


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliverables", type=Path, help="A run's OUT/<campaign> folder (default: run the example).")
    parser.add_argument("--out", type=Path, default=ROOT / "examples" / "previews")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="syncreel-previews-") as scratch:
        folder = args.deliverables or run_example(Path(scratch))
        youtube = folder / "en" / f"{CAMPAIGN}_en_youtube.mp4"
        tiktok = folder / "en" / f"{CAMPAIGN}_en_tiktok.mp4"
        contact_sheet(youtube, args.out / "contact-youtube-en.png")
        contact_sheet(tiktok, args.out / "contact-tiktok-en.png")
        spectrogram_image(youtube, args.out / "spectrogram-youtube-en.png")
    for name in ("contact-youtube-en.png", "contact-tiktok-en.png", "spectrogram-youtube-en.png"):
        print(f"{args.out / name}: {(args.out / name).stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
