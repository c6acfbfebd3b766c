"""A procedural audio-visual world to train the built-in model on: every sound is caused by what is seen.

Three kinds of scene, each in a *setting* (beach, city, forest, studio) that fixes the background
colour and the ambience, each with a caption and its ground-truth event times:
- *bounce*: a ball falls, hits the floor and bounces (restitution < 1) while drifting sideways; every
  floor contact makes a thump (a pitched, fast-decaying knock plus a noise burst).
- *pulse*: a square swells on every beat of a tempo; a kick drum plays on the beat and a hi-hat between.
- *talk*: a real face photo (scikit-image's astronaut) says a line synthesised by espeak-ng; the mouth
  opens with the loudness of the speech, frame by frame. Events are the syllable onsets.

The sound is kept as three stems, ``STEMS`` = dialogue, effects, ambience, which sum to the mix.
Frames are drawn at ``size`` × ``size`` at frame-centre times (i + 0.5) / fps, the clock the
transformer's rotary time uses; audio is rendered at ``rate``. Everything is drawn from one numpy
Generator: a seed gives the same scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from syncreel.espeak import synthesize
from syncreel.model.transformer import words

STEMS = ("dialogue", "effects", "ambience")
SCENE_KINDS = ("bounce", "pulse", "talk")

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.15, 0.15),
    "orange": (0.95, 0.55, 0.1),
    "yellow": (0.95, 0.9, 0.2),
    "blue": (0.15, 0.3, 0.9),
    "purple": (0.55, 0.25, 0.8),
    "pink": (0.95, 0.5, 0.7),
    "white": (0.95, 0.95, 0.95),
}
# setting → (how a caption says it, background colour)
SETTINGS: dict[str, tuple[str, tuple[float, float, float]]] = {
    "beach": ("on a beach", (0.86, 0.78, 0.55)),
    "city": ("in a city street", (0.42, 0.42, 0.45)),
    "forest": ("in a forest", (0.12, 0.4, 0.18)),
    "studio": ("in a studio", (0.04, 0.04, 0.06)),
}
TEMPOS = (90, 120, 150)
GRAVITY = 4.0  # frame heights per second squared: a drop from the top lands in about 0.7 s
LINES = (
    "Fresh and bright.",
    "Taste the sunshine.",
    "Made for mornings.",
    "Try it today.",
    "Light, cold, and crisp.",
    "Your new favourite.",
    "Bold flavour, zero sugar.",
    "Open a can of joy.",
    "Feel the fizz.",
    "Good things take time.",
    "Ready when you are.",
    "Say hello to summer.",
)
VOICES = ("en", "en-us", "en+f3", "en+f4", "en-us+f2")
CAPTIONS = {
    "bounce": "a {colour} ball bouncing {where}, a thump on every bounce",
    "pulse": "a {colour} square pulsing to a {tempo} bpm beat {where}, a kick on every beat",
    "talk": 'a woman talking {where}, she says "{line}"',
}
# The face in skimage.data.astronaut(): a square crop around it, and the mouth within that crop.
FACE_CROP = (20, 240, 115, 335)  # rows, columns of the 512×512 photo
MOUTH_CENTRE = (0.57, 0.5)  # (y, x) as fractions of the crop
MOUTH_HALF_WIDTH, MOUTH_MAX_HALF_HEIGHT = 0.085, 0.065


@dataclass(frozen=True)
class WorldClip:
    kind: str
    caption: str
    frames: np.ndarray  # (T, size, size, 3) float32 in [-1, 1]
    stems: np.ndarray  # (len(STEMS), N) float32 at the sample rate; their sum is the mix
    event_times_s: tuple[float, ...]

    @property
    def audio(self) -> np.ndarray:
        return self.stems.sum(0)


def _soft_disc(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, radius: float) -> np.ndarray:
    """Coverage of a disc with a one-pixel soft edge (anti-aliased at a tiny grid)."""
    return np.clip(radius + 0.5 - np.hypot(yy - cy, xx - cx), 0.0, 1.0)


def _soft_square(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, half: float) -> np.ndarray:
    return np.clip(half + 0.5 - np.maximum(np.abs(yy - cy), np.abs(xx - cx)), 0.0, 1.0)


def _place(audio: np.ndarray, sound: np.ndarray, at_s: float, rate: int) -> None:
    start = int(at_s * rate)
    end = min(audio.size, start + sound.size)
    if 0 <= start < audio.size:
        audio[start:end] += sound[: end - start]


def thump(rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.12 * rate)) / rate
    knock = np.sin(2 * np.pi * rng.uniform(90, 180) * t * (1 - 0.5 * t / t[-1])) * np.exp(-t * 35)
    burst = rng.standard_normal(t.size) * np.exp(-t * 90) * 0.5
    sound = knock + burst
    return (0.5 * sound / np.abs(sound).max()).astype(np.float32)


def _kick(rate: int) -> np.ndarray:
    t = np.arange(int(0.2 * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * (45 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 14)).astype(np.float32)


def _hat(rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.04 * rate)) / rate
    return (0.1 * np.diff(rng.standard_normal(t.size), prepend=0.0) * np.exp(-t * 120)).astype(np.float32)


def _lowpass(noise: np.ndarray, cutoff_hz: float, rate: int) -> np.ndarray:
    spectrum = np.fft.rfft(noise)
    spectrum[np.fft.rfftfreq(noise.size, 1 / rate) > cutoff_hz] = 0
    return np.fft.irfft(spectrum, noise.size)


def _ambience(setting: str, rng: np.random.Generator, seconds: float, rate: int) -> np.ndarray:
    """The setting's bed of sound, about -32 dBFS RMS (the studio: a quiet room tone)."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    if setting == "beach":  # surf: low noise swelling every few seconds
        bed = _lowpass(rng.standard_normal(n), 900, rate) * (
            0.6 + 0.4 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6))
        )
    elif setting == "city":  # traffic rumble and a mains hum
        bed = _lowpass(rng.standard_normal(n), 250, rate) + 0.3 * np.sin(2 * np.pi * 100 * t)
    elif setting == "forest":  # leaves in wind and bird chirps
        bed = 0.3 * _lowpass(rng.standard_normal(n), 3000, rate)
        for at in rng.uniform(0, seconds, int(rng.integers(2, 5))):
            d = np.arange(int(0.08 * rate)) / rate
            chirp = np.sin(2 * np.pi * (2500 + 9000 * d) * d) * np.sin(np.pi * d / d[-1])
            _place(bed, 3 * chirp, float(at), rate)
    else:  # studio
        bed = 0.15 * rng.standard_normal(n)
    return (bed * (0.025 / max(1e-9, float(np.sqrt(np.mean(bed**2)))))).astype(np.float32)


def _setting(rng: np.random.Generator) -> tuple[str, str, np.ndarray]:
    name = str(rng.choice(list(SETTINGS)))
    phrase, background = SETTINGS[name]
    return name, phrase, np.array(background, np.float32)


def _object_colour(rng: np.random.Generator, background: np.ndarray) -> str:
    """A colour that stands out from the background."""
    names = [n for n, c in COLOURS.items() if np.abs(np.array(c) - background).sum() > 0.6]
    return str(rng.choice(names))


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    rows, columns = np.mgrid[0:size, 0:size].astype(np.float32)
    return rows, columns


def bounce(rng: np.random.Generator, seconds: float, fps: float, size: int, rate: int) -> WorldClip:
    setting, where, background = _setting(rng)
    colour = _object_colour(rng, background)
    radius = rng.uniform(0.1, 0.16) * size
    floor = size - 1 - radius
    y0, x0 = rng.uniform(0, 0.45) * size, rng.uniform(0.2, 0.8) * size
    vx = rng.uniform(-0.3, 0.3) * size
    restitution = rng.uniform(0.6, 0.85)
    # Simulate finely, then sample the frames and collect the contact times.
    dt = 1 / 1000
    y, vy, x, t = y0, 0.0, x0, 0.0
    contacts, track = [], []
    while t < seconds:
        resting = y >= floor and vy == 0.0
        vy += 0.0 if resting else GRAVITY * size * dt
        y += vy * dt
        x += vx * dt
        if x < radius or x > size - 1 - radius:
            vx = -vx
            x = float(np.clip(x, radius, size - 1 - radius))
        if y >= floor and vy > 0:
            y, vy = floor, -vy * restitution
            if abs(vy) > 0.3 * size:
                contacts.append(t)
            else:  # too slow to bounce again: it rests on the floor (and rolls on, silently)
                vy = 0.0
        track.append((t, y, x))
        t += dt
    times = np.array([p[0] for p in track])
    yy, xx = _grid(size)
    frames = np.empty((int(round(seconds * fps)), size, size, 3), np.float32)
    for index in range(frames.shape[0]):
        _, cy, cx = track[int(np.searchsorted(times, (index + 0.5) / fps).clip(0, len(track) - 1))]
        cover = _soft_disc(yy, xx, cy, cx, radius)[..., None]
        frames[index] = (1 - cover) * background + cover * np.array(COLOURS[colour])
    stems = np.zeros((len(STEMS), int(seconds * rate)), np.float32)
    for at in contacts:
        _place(stems[1], thump(rate, rng), at, rate)
    stems[2] = _ambience(setting, rng, seconds, rate)
    caption = CAPTIONS["bounce"].format(colour=colour, where=where)
    return WorldClip("bounce", caption, frames * 2 - 1, stems, tuple(contacts))


def pulse(rng: np.random.Generator, seconds: float, fps: float, size: int, rate: int) -> WorldClip:
    setting, where, background = _setting(rng)
    colour = _object_colour(rng, background)
    tempo = int(rng.choice(TEMPOS))
    beat = 60.0 / tempo
    beats = tuple(float(b) for b in np.arange(rng.uniform(0, beat), seconds, beat))
    cy, cx = rng.uniform(0.4, 0.6) * size, rng.uniform(0.35, 0.65) * size
    base = rng.uniform(0.1, 0.16) * size
    yy, xx = _grid(size)
    frames = np.empty((int(round(seconds * fps)), size, size, 3), np.float32)
    for index in range(frames.shape[0]):
        t = (index + 0.5) / fps
        since = min((t - b for b in beats if b <= t), default=beat)
        half = base * (1 + 0.9 * np.exp(-since * 10))  # swells on the beat, relaxes after
        cover = _soft_square(yy, xx, cy, cx, half)[..., None]
        frames[index] = (1 - cover) * background + cover * np.array(COLOURS[colour])
    stems = np.zeros((len(STEMS), int(seconds * rate)), np.float32)
    for at in beats:
        _place(stems[1], _kick(rate), at, rate)
        _place(stems[1], _hat(rate, rng), at + beat / 2, rate)
    stems[2] = _ambience(setting, rng, seconds, rate)
    caption = CAPTIONS["pulse"].format(colour=colour, tempo=tempo, where=where)
    return WorldClip("pulse", caption, frames * 2 - 1, stems, beats)


@cache
def face(size: int) -> np.ndarray:
    """The astronaut's face, cropped square and resized to size × size, float32 RGB in [0, 1]."""
    from skimage import data
    from skimage.transform import resize

    top, bottom, left, right = FACE_CROP
    crop = data.astronaut()[top:bottom, left:right].astype(np.float32) / 255.0
    return resize(crop, (size, size), anti_aliasing=True).astype(np.float32)


@cache
def _speech(line: str, voice: str, words_per_minute: int, rate: int) -> np.ndarray:
    wave = synthesize(line, rate, voice=voice, words_per_minute=words_per_minute)
    return (0.5 * wave / max(1e-9, float(np.abs(wave).max()))).astype(np.float32)


def loudness_envelope(wave: np.ndarray, rate: int, times_s: np.ndarray, window_s: float = 0.06) -> np.ndarray:
    """RMS of ``wave`` in a window centred on each time, scaled so the loudest time is 1."""
    half = int(window_s * rate / 2)
    centres = (times_s * rate).astype(int)
    rms = np.array(
        [np.sqrt(np.mean(wave[max(0, c - half) : c + half] ** 2)) if c < wave.size else 0.0 for c in centres]
    )
    return rms / max(1e-9, float(rms.max()))


def mouth_mask(size: int, opening: float) -> np.ndarray:
    """Coverage of the open mouth (0 where closed) for an opening in [0, 1]."""
    yy, xx = _grid(size)
    cy, cx = MOUTH_CENTRE[0] * size, MOUTH_CENTRE[1] * size
    half_w, half_h = MOUTH_HALF_WIDTH * size, max(1e-3, opening * MOUTH_MAX_HALF_HEIGHT * size)
    inside = ((yy - cy) / half_h) ** 2 + ((xx - cx) / half_w) ** 2
    return np.clip((1.0 - inside) * min(1.0, opening * 3), 0.0, 1.0)


def talk(rng: np.random.Generator, seconds: float, fps: float, size: int, rate: int) -> WorldClip:
    setting, where, _ = _setting(rng)
    line = str(rng.choice(LINES))
    voice = str(rng.choice(VOICES))
    speech = _speech(line, voice, int(rng.integers(150, 190)), rate)
    stems = np.zeros((len(STEMS), int(seconds * rate)), np.float32)
    _place(stems[0], speech, float(rng.uniform(0.0, 0.3)), rate)
    stems[2] = _ambience(setting, rng, seconds, rate)
    frame_times = (np.arange(int(round(seconds * fps))) + 0.5) / fps
    opening = np.clip(loudness_envelope(stems[0], rate, frame_times) * 1.3 - 0.1, 0.0, 1.0)
    photo, lips = face(size), np.array((0.22, 0.04, 0.05), np.float32)
    frames = np.stack([(1 - m) * photo + m * lips for m in (mouth_mask(size, o)[..., None] for o in opening)])
    # syllable onsets: where the 10 ms loudness envelope rises through half its peak
    hop = np.arange(0, seconds, 0.01)
    envelope = loudness_envelope(stems[0], rate, hop, window_s=0.03)
    rising = np.flatnonzero((envelope[1:] >= 0.5) & (envelope[:-1] < 0.5)) + 1
    events = tuple(float(hop[i]) for i in rising)
    caption = CAPTIONS["talk"].format(where=where, line=line)
    return WorldClip("talk", caption, frames.astype(np.float32) * 2 - 1, stems, events)


SCENES = {"bounce": bounce, "pulse": pulse, "talk": talk}


@cache
def vocabulary() -> frozenset[str]:
    """Every word (as the text tokenizer splits them) that a caption of this world can contain."""
    texts = [template.replace("{", " ").replace("}", " ") for template in CAPTIONS.values()]
    texts += list(COLOURS) + [phrase for phrase, _ in SETTINGS.values()] + [str(t) for t in TEMPOS] + list(LINES)
    placeholders = {"colour", "where", "tempo", "line"}
    return frozenset(w for text in texts for w in words(text)) - placeholders


def sample_clip(
    rng: np.random.Generator, seconds: float, fps: float, size: int, rate: int, kind: str | None = None
) -> WorldClip:
    """One random scene (of ``kind`` when given)."""
    if kind is not None and kind not in SCENES:
        raise ValueError(f"unknown scene kind {kind!r}; one of {', '.join(SCENES)}")
    chosen = kind or SCENE_KINDS[int(rng.integers(len(SCENE_KINDS)))]
    return SCENES[chosen](rng, seconds, fps, size, rate)
