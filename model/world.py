"""A procedural audio-visual world to train the built-in model on: every sound is caused by what is seen.

Two kinds of scene, each with a caption and its ground-truth event times:
- *bounce*: a ball falls, hits the floor and bounces (restitution < 1) while drifting sideways; every
  floor contact makes a thump (a pitched, fast-decaying knock plus a noise burst).
- *pulse*: a square swells on every beat of a tempo; a kick drum plays on the beat and a hi-hat between.

Frames are drawn directly at the model's latent grid (soft-edged shapes, values in [-1, 1]) at frame
centre times (i + 0.5) / fps, the same clock the transformer's rotary time uses; audio is rendered at
the model's sample rate. Everything is drawn from one numpy Generator: a seed gives the same scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.15, 0.15),
    "orange": (0.95, 0.55, 0.1),
    "yellow": (0.95, 0.9, 0.2),
    "green": (0.2, 0.8, 0.3),
    "teal": (0.05, 0.45, 0.45),
    "blue": (0.15, 0.3, 0.9),
    "purple": (0.55, 0.25, 0.8),
    "pink": (0.95, 0.5, 0.7),
    "white": (0.95, 0.95, 0.95),
    "black": (0.05, 0.05, 0.05),
    "cream": (0.96, 0.94, 0.89),
    "grey": (0.5, 0.5, 0.5),
}
OBJECT_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white")
BACKGROUNDS = ("teal", "black", "cream", "grey", "blue", "purple")
TEMPOS = (90, 120, 150)
GRAVITY = 4.0  # frame heights per second squared: a drop from the top lands in about 0.7 s


@dataclass(frozen=True)
class WorldClip:
    caption: str
    frames: np.ndarray  # (T, H, W, 3) float32 in [-1, 1], at the latent grid
    audio: np.ndarray  # (N,) float32 at the model's sample rate
    event_times_s: tuple[float, ...]


def _soft_disc(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, radius: float) -> np.ndarray:
    """Coverage of a disc with a one-pixel soft edge (anti-aliased at a tiny grid)."""
    return np.clip(radius + 0.5 - np.hypot(yy - cy, xx - cx), 0.0, 1.0)


def _soft_square(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, half: float) -> np.ndarray:
    return np.clip(half + 0.5 - np.maximum(np.abs(yy - cy), np.abs(xx - cx)), 0.0, 1.0)


def _thump(rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.12 * rate)) / rate
    pitch = rng.uniform(90, 180)
    knock = np.sin(2 * np.pi * pitch * t * (1 - 0.5 * t / t[-1])) * np.exp(-t * 35)
    burst = rng.standard_normal(t.size) * np.exp(-t * 90) * 0.5
    return (knock + burst).astype(np.float32)


def _kick(rate: int) -> np.ndarray:
    t = np.arange(int(0.2 * rate)) / rate
    return (np.sin(2 * np.pi * (45 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 14)).astype(np.float32)


def _hat(rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.04 * rate)) / rate
    noise = rng.standard_normal(t.size)
    return (0.3 * np.diff(noise, prepend=0.0) * np.exp(-t * 120)).astype(np.float32)


def _place(audio: np.ndarray, sound: np.ndarray, at_s: float, rate: int) -> None:
    start = int(at_s * rate)
    end = min(audio.size, start + sound.size)
    if 0 <= start < audio.size:
        audio[start:end] += sound[: end - start]


def bounce(rng: np.random.Generator, seconds: float, fps: float, height: int, width: int, rate: int) -> WorldClip:
    colour, background = rng.choice(OBJECT_COLOURS), rng.choice(BACKGROUNDS)
    radius = rng.uniform(0.12, 0.2) * height
    floor = height - 1 - radius
    y0, x0 = rng.uniform(0, 0.4) * height, rng.uniform(0.15, 0.85) * width
    vx = rng.uniform(-0.3, 0.3) * width
    restitution = rng.uniform(0.6, 0.85)
    # Simulate finely, then sample the frames and collect the contact times.
    dt = 1 / 600
    y, vy, x, t = y0, 0.0, x0, 0.0
    contacts, track = [], []
    while t < seconds:
        vy += GRAVITY * height * dt
        y += vy * dt
        x += vx * dt
        if x < radius or x > width - 1 - radius:
            vx = -vx
            x = float(np.clip(x, radius, width - 1 - radius))
        if y >= floor and vy > 0:
            y, vy = floor, -vy * restitution
            if abs(vy) > 0.3 * height:
                contacts.append(t)
            else:
                vy = 0.0
        track.append((t, y, x))
        t += dt
    times = np.array([p[0] for p in track])
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((int(round(seconds * fps)), height, width, 3), np.float32)
    for index in range(frames.shape[0]):
        _, cy, cx = track[int(np.searchsorted(times, (index + 0.5) / fps).clip(0, len(track) - 1))]
        cover = _soft_disc(yy, xx, cy, cx, radius)[..., None]
        frames[index] = (1 - cover) * COLOURS[background] + cover * COLOURS[colour]
    audio = np.zeros(int(seconds * rate), np.float32)
    for at in contacts:
        _place(audio, _thump(rate, rng), at, rate)
    caption = f"a {colour} ball bouncing on a {background} background, a thump on every bounce"
    return WorldClip(caption, frames * 2 - 1, audio, tuple(contacts))


def pulse(rng: np.random.Generator, seconds: float, fps: float, height: int, width: int, rate: int) -> WorldClip:
    colour, background = rng.choice(OBJECT_COLOURS), rng.choice(BACKGROUNDS)
    tempo = int(rng.choice(TEMPOS))
    beat = 60.0 / tempo
    phase = rng.uniform(0, beat)
    beats = tuple(float(b) for b in np.arange(phase, seconds, beat))
    cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.3, 0.7) * width
    base = rng.uniform(0.12, 0.2) * height
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((int(round(seconds * fps)), height, width, 3), np.float32)
    for index in range(frames.shape[0]):
        t = (index + 0.5) / fps
        since = min((t - b for b in beats if b <= t), default=beat)
        half = base * (1 + 0.8 * np.exp(-since * 8))  # swells on the beat, relaxes after
        cover = _soft_square(yy, xx, cy, cx, half)[..., None]
        frames[index] = (1 - cover) * COLOURS[background] + cover * COLOURS[colour]
    audio = np.zeros(int(seconds * rate), np.float32)
    for at in beats:
        _place(audio, _kick(rate), at, rate)
        _place(audio, _hat(rate, rng), at + beat / 2, rate)
    caption = f"a {colour} square pulsing to a {tempo} bpm beat on a {background} background, a kick on every beat"
    return WorldClip(caption, frames * 2 - 1, audio, beats)


SCENES = (bounce, pulse)


def sample_clip(rng: np.random.Generator, seconds: float, fps: float, height: int, width: int, rate: int) -> WorldClip:
    """One random scene; its audio is peak-normalised to -6 dBFS (never silent: every scene has events)."""
    clip = SCENES[int(rng.integers(len(SCENES)))](rng, seconds, fps, height, width, rate)
    peak = float(np.abs(clip.audio).max())
    audio = clip.audio * (0.5 / peak) if peak > 0 else clip.audio
    return WorldClip(clip.caption, clip.frames, audio.astype(np.float32), clip.event_times_s)
