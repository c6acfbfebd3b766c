"""The sync scorers' calibration set: clips whose true offset (or fault) is known, written as real MP4s.

    python benchmarks/calibration.py OUT_DIR [--full]

Lip-sync: scikit-image's astronaut photo with the mouth opened by the loudness of a line spoken by
espeak-ng (syncreel/espeak.py), frame by frame: the lower lip and jaw are moved down and the gap between
the lips is filled with a dark mouth interior (a painted dark patch, as model/world.py draws for its
own training clips, is not seen as an open mouth by the face-mesh model: measured, its inner-lip gap
did not change with the patch). The sound is then shifted by a known offset (positive = audio late).
Negatives: another line's mouth under this speech, a mouth that never moves, a clip whose sound drifts
later by 50 ms every second, speech over a shot without a face, and a face with no speech.
Hard positives: music under the speech, a small face in a 1920×1080 frame, 24 fps sources.
Sound effects: model/world.py's bouncing ball (a thump on every floor contact), with its sound shifted;
negatives: another ball's sound, and a still picture. Every clip is encoded by media/encode.py's
`write_master` (H.264 + AAC, as generated masters are).

``--full`` writes every shift; the default (what the fast tests use) a subset covering each kind of case.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import map_coordinates
from scipy.signal import resample_poly

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from syncreel.media.encode import write_master  # noqa: E402
from syncreel.model.world import LINES, bounce, loudness_envelope  # noqa: E402

from syncreel.espeak import synthesize  # noqa: E402

RECIPE_FILES = tuple(ROOT / name for name in ("benchmarks/calibration.py", "media/encode.py", "model/world.py",
                                              "syncreel/espeak.py", "syncreel/audio.py"))  # fmt: skip
RATE = 48_000
FPS = 25.0
SPEECH_START_S = 0.6  # where the line starts in the picture; the sound moves from here by the offset
TAIL_S = 0.7
# The astronaut's mouth in the 512×512 photo: the line between the lips, the corners' half-width,
# how far the corners sit above the centre (a smile), and how far the jaw drops at full opening.
MOUTH_LINE_Y, MOUTH_X, MOUTH_HALF_WIDTH, SMILE_PX = 146.0, 223.0, 20.0, 5.0
JAW_DROP_PX, REST_OPENING = 20.0, 0.2  # below REST_OPENING the lower lip closes over the teeth
OPENING_LEVELS = 48  # openings are drawn at this many levels (cached)
INTERIOR_RGB = np.array([70, 20, 25], np.float32)

LIP_SHIFTS_MS = (-400, -250, -100, 0, 60, 180, 250, 400)
LIP_SHIFTS_FAST_MS = (-250, 0, 180)
SFX_SHIFTS_MS = (-200, -120, 0, 60, 200)
SFX_SHIFTS_FAST_MS = (-120, 200)


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "lipsync" or "sfx"
    path: str
    true_offset_ms: float | None  # positives: the shift applied (positive = audio late)
    expected_status: str | None  # negatives: the status the scorer must give; None for positives
    fps: float
    size: tuple[int, int]
    events_s: tuple[float, ...] = ()  # sfx: the ball's floor contacts on the picture's clock
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def negative(self) -> bool:
        return self.expected_status is not None


@cache
def _photo() -> np.ndarray:
    from skimage import data

    return data.astronaut().astype(np.float32)


@cache
def talking_face(level: int) -> np.ndarray:
    """The 512×512 astronaut with the mouth opened to ``level`` / (OPENING_LEVELS − 1), uint8 RGB."""
    photo = _photo()
    opening = level / (OPENING_LEVELS - 1)
    out = photo.copy()
    y0, y1 = int(MOUTH_LINE_Y) - 8, int(MOUTH_LINE_Y) + 70
    x0, x1 = int(MOUTH_X - MOUTH_HALF_WIDTH) - 2, int(MOUTH_X + MOUTH_HALF_WIDTH) + 3
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    u = np.clip((xx - MOUTH_X) / MOUTH_HALF_WIDTH, -1, 1)
    width = np.sqrt(np.clip(1 - u * u, 0, 1))  # elliptical: the corners stay closed
    split = MOUTH_LINE_Y - SMILE_PX * u * u
    # everything under the lip line moves down, fading out over the chin into the neck
    below = np.clip(1 - (yy - (MOUTH_LINE_Y + 38)) / 30, 0, 1) * np.clip(yy - split + 1, 0, 1)
    drop = (opening - REST_OPENING) * JAW_DROP_PX * width * below
    source_y = yy - drop
    for channel in range(3):
        out[y0:y1, x0:x1, channel] = map_coordinates(photo[..., channel], [source_y, xx], order=1)
    gap = np.clip(np.minimum(yy - split, split - source_y), 0, 1)[..., None]
    depth = np.clip((yy - split) / np.maximum(drop, 1e-3), 0, 1)
    interior = INTERIOR_RGB * (0.6 + 0.4 * np.sin(np.pi * depth))[..., None]
    out[y0:y1, x0:x1] = (1 - gap) * out[y0:y1, x0:x1] + gap * interior
    return out.clip(0, 255).astype(np.uint8)


@cache
def _speech(line: str, voice: str) -> np.ndarray:
    wave = synthesize(line, RATE, voice=voice, words_per_minute=160)
    return (0.5 * wave / max(1e-9, float(np.abs(wave).max()))).astype(np.float32)


def _placed(sound: np.ndarray, at_s: float, samples: int) -> np.ndarray:
    out = np.zeros(samples, np.float32)
    start = int(round(at_s * RATE))
    lo, hi = max(0, start), min(samples, start + sound.size)
    if hi > lo:
        out[lo:hi] = sound[lo - start : hi - start]
    return out


def openings(speech_on_picture: np.ndarray, frames: int, fps: float) -> np.ndarray:
    """Mouth opening per frame from the loudness of the speech at the frame's centre (as model/world.py's
    talking face does)."""
    times = (np.arange(frames) + 0.5) / fps
    envelope = loudness_envelope(speech_on_picture, RATE, times)
    return np.clip(envelope * 1.3 - 0.1, 0.0, 1.0)


def _room_tone(samples: int, seed: int) -> np.ndarray:
    return (0.002 * np.random.default_rng(seed).standard_normal(samples)).astype(np.float32)


def _music(samples: int, level_rms: float) -> np.ndarray:
    """A soft chord progression with a kick on every beat at 120 bpm, scaled to ``level_rms``."""
    t = np.arange(samples) / RATE
    chords = ((220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6), (196.0, 246.9, 329.6))
    bar = (t // 2.0).astype(int) % len(chords)
    music = np.zeros(samples)
    for voice in range(3):
        freq = np.array([chord[voice] for chord in chords])[bar]
        music += np.sin(2 * np.pi * np.cumsum(freq) / RATE) + 0.3 * np.sin(4 * np.pi * np.cumsum(freq) / RATE)
    beat = t % 0.5
    music += 2.0 * np.sin(2 * np.pi * (50 + 80 * np.exp(-beat * 30)) * beat) * np.exp(-beat * 12)
    return (music * level_rms / float(np.sqrt(np.mean(music**2)))).astype(np.float32)


def _compose(face_levels: np.ndarray, size: tuple[int, int], face_px: int, at: tuple[float, float]) -> np.ndarray:
    """Frames (T, H, W, 3): a neutral backdrop with the talking photo scaled to ``face_px`` square,
    its centre at ``at`` (fractions of the frame)."""
    width, height = size
    yy = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    backdrop = (np.array([150, 160, 170], np.float32) * (0.8 + 0.2 * yy)).repeat(width, axis=1).astype(np.uint8)
    left, top = int(at[0] * width - face_px / 2), int(at[1] * height - face_px / 2)
    frames = np.empty((len(face_levels), height, width, 3), np.uint8)
    scaled: dict[int, np.ndarray] = {}
    for index, level in enumerate(face_levels):
        if level not in scaled:
            scaled[level] = np.asarray(
                Image.fromarray(talking_face(int(level))).resize((face_px, face_px), Image.Resampling.LANCZOS)
            )
        frames[index] = backdrop
        frames[index, top : top + face_px, left : left + face_px] = scaled[level]
    return frames


def _levels(opening: np.ndarray) -> np.ndarray:
    return np.round(opening * (OPENING_LEVELS - 1)).astype(int)


def lipsync_clip(
    path: Path,
    *,
    line: str,
    voice: str,
    shift_ms: float = 0.0,
    fps: float = FPS,
    size: tuple[int, int] = (640, 360),
    face_px: int = 360,
    at: tuple[float, float] = (0.5, 0.5),
    mouth_line: tuple[str, str] | None = None,
    static_mouth: bool = False,
    drift_per_s: float = 0.0,
    music_db: float | None = None,
    no_face: bool = False,
    silent: bool = False,
    seed: int = 0,
) -> Path:
    """One talking-face clip; see the module docstring for what each option makes."""
    speech = _speech(line, voice)
    seconds = SPEECH_START_S + speech.size / RATE * (1 + drift_per_s) + TAIL_S
    frames_count = int(round(seconds * fps))
    samples = int(round(frames_count / fps * RATE))
    mouth_speech = _speech(*mouth_line) if mouth_line else speech
    on_picture = _placed(mouth_speech, SPEECH_START_S, samples)
    opening = np.zeros(frames_count) if static_mouth or silent else openings(on_picture, frames_count, fps)
    heard = speech
    if drift_per_s:
        # played slower: each second of speech lasts 1 + drift seconds, so the sound falls behind
        heard = resample_poly(speech, int(round((1 + drift_per_s) * 1000)), 1000).astype(np.float32)
    audio = _room_tone(samples, seed)
    if not silent:
        audio += _placed(heard, SPEECH_START_S + shift_ms / 1000, samples)
    if music_db is not None:
        speech_rms = float(np.sqrt(np.mean(speech**2)))
        audio += _music(samples, speech_rms * 10 ** (music_db / 20))
    if no_face:
        from skimage import data

        shot = np.asarray(Image.fromarray(data.coffee()).resize(size, Image.Resampling.LANCZOS))
        frames = np.repeat(shot[None], frames_count, axis=0)
    else:
        frames = _compose(_levels(opening), size, face_px, at)
    write_master(frames, audio[None], fps, RATE, path)
    return path


def sfx_clip(path: Path, *, seed: int, shift_ms: float = 0.0, fps: float = FPS, sound_seed: int | None = None,
             still: bool = False, seconds: float = 5.0) -> tuple[Path, tuple[float, ...]]:  # fmt: skip
    """A bouncing ball with a thump on every floor contact, its effects shifted by ``shift_ms``; the
    sound of another ball (``sound_seed``) or a still picture make the negatives. Returns the path and
    the contact times on the picture's clock."""
    clip = bounce(np.random.default_rng(seed), seconds, fps, 256, RATE)
    frames = np.round((clip.frames + 1) * 127.5).clip(0, 255).astype(np.uint8)
    if still:
        frames = np.repeat(frames[:1], len(frames), axis=0)
    effects = clip.stems[1]
    if sound_seed is not None:
        effects = bounce(np.random.default_rng(sound_seed), seconds, fps, 256, RATE).stems[1]
    shift = int(round(shift_ms / 1000 * RATE))
    shifted = np.zeros_like(effects)
    if shift >= 0:
        shifted[shift:] = effects[: effects.size - shift]
    else:
        shifted[:shift] = effects[-shift:]
    write_master(frames, (shifted + clip.stems[2])[None], fps, RATE, path)
    return path, () if still else clip.event_times_s


def _shift_name(shift: float) -> str:
    return f"{'plus' if shift >= 0 else 'minus'}{abs(int(shift)):03d}ms"


def build(folder: Path, *, full: bool = False) -> list[Case]:
    """Write the calibration clips under ``folder``/fast (or /full) and a manifest; a second call with the same recipe
    (this file unchanged) reads the manifest instead of writing the clips again."""
    folder = folder / ("full" if full else "fast")  # the two sets vary voices and seeds differently
    folder.mkdir(parents=True, exist_ok=True)
    # named by the content of the code that makes the clips, so that a changed recipe is never served stale ones
    recipe = hashlib.sha256(b"".join(path.read_bytes() for path in RECIPE_FILES)).hexdigest()[:12]
    manifest = folder / f"manifest-{'full' if full else 'fast'}-{recipe}.json"
    if manifest.is_file():
        cases = [Case(**{**c, "size": tuple(c["size"]), "events_s": tuple(c["events_s"])}) for c in
                 json.loads(manifest.read_text())]  # fmt: skip
        if all(Path(c.path).is_file() for c in cases):
            return cases
    cases: list[Case] = []
    line_a, line_b = f"{LINES[0]} {LINES[5]} {LINES[9]}", f"{LINES[3]} {LINES[8]} {LINES[11]}"
    voices = ("en", "en-us+f2", "en+f3")

    def lip(name: str, expected: str | None, shift: float | None, **options) -> None:
        fps, size = options.get("fps", FPS), options.get("size", (640, 360))
        path = lipsync_clip(folder / f"{name}.mp4", **options)
        cases.append(Case(name, "lipsync", str(path), shift, expected, fps, size))

    for i, shift in enumerate(LIP_SHIFTS_MS if full else LIP_SHIFTS_FAST_MS):
        lip(f"lip_{_shift_name(shift)}", None, shift, line=line_a, voice=voices[i % 3], shift_ms=shift, seed=i)
    for shift in (-160, 0, 200) if full else (-160,):
        lip(f"lip_24fps_{_shift_name(shift)}", None, shift, line=line_b, voice="en", shift_ms=shift, fps=24.0)
    for shift in (0, 250) if full else (250,):
        lip(f"lip_music_{_shift_name(shift)}", None, shift, line=line_b, voice="en-us+f2", shift_ms=shift,
            music_db=-12.0)  # fmt: skip
    for shift in (0, -250) if full else (-100,):
        lip(f"lip_smallface_{_shift_name(shift)}", None, shift, line=line_a, voice="en+f3", shift_ms=shift,
            size=(1920, 1080), face_px=288, at=(0.72, 0.4))  # fmt: skip
    lip("lip_mismatched", "unsynced", None, line=line_a, voice="en", mouth_line=(line_b, "en"))
    lip("lip_static_mouth", "static_mouth", None, line=line_a, voice="en-us+f2", static_mouth=True)
    lip("lip_drifting", "drifting", None, line=f"{line_a} {line_b}", voice="en", drift_per_s=0.05)
    lip("lip_no_face", "no_face", None, line=line_b, voice="en+f3", no_face=True)
    lip("lip_no_speech", "no_speech", None, line=line_a, voice="en", silent=True)

    for i, shift in enumerate(SFX_SHIFTS_MS if full else SFX_SHIFTS_FAST_MS):
        path, events = sfx_clip(folder / f"sfx_{_shift_name(shift)}.mp4", seed=11 + i, shift_ms=shift)
        cases.append(Case(f"sfx_{_shift_name(shift)}", "sfx", str(path), shift, None, FPS, (256, 256), events))
    for shift in (-120, 0, 200) if full else (200,):
        path, events = sfx_clip(folder / f"sfx_24fps_{_shift_name(shift)}.mp4", seed=21, shift_ms=shift, fps=24.0)
        cases.append(Case(f"sfx_24fps_{_shift_name(shift)}", "sfx", str(path), shift, None, 24.0, (256, 256), events))
    path, events = sfx_clip(folder / "sfx_mismatched.mp4", seed=31, sound_seed=32)
    cases.append(Case("sfx_mismatched", "sfx", str(path), None, "unsynced", FPS, (256, 256), events))
    path, _ = sfx_clip(folder / "sfx_still.mp4", seed=33, still=True)
    cases.append(Case("sfx_still", "sfx", str(path), None, "no_motion", FPS, (256, 256)))
    manifest.write_text(json.dumps([asdict(c) for c in cases], indent=1))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the clips and their manifest")
    parser.add_argument("--full", action="store_true", help="every shift, not the fast subset")
    args = parser.parse_args()
    cases = build(args.out, full=args.full)
    for case in cases:
        truth = case.expected_status or f"{case.true_offset_ms:+.0f} ms"
        print(f"{case.name:28} {case.kind:8} {truth:>14}  {case.path}")


if __name__ == "__main__":
    main()
