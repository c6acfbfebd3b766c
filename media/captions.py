"""Captions from dialogue: timed cues, SRT and WebVTT sidecars, and an ASS file to burn them in.

- Timing: each line starts where the brief (or the generator) put it within its scene, else the
  scene's lines are spread over it; it lasts as long as it takes to read (``READING_CHARS_PER_S``),
  never past the next line or the scene's end. When the sound has clear speech (`speech_spans`), a
  cue's start and end snap to the speech it overlaps.
- Layout: text is wrapped to the width the safe zone leaves, and a cue longer than the platform's
  line limit becomes consecutive cues (time shared by length), so a 300-character line never climbs
  out of the safe zone.
- Burn-in: an ASS script drawn by libass (FriBidi + HarfBuzz: Arabic and Hebrew are shaped and run
  right to left), bottom-centred with the safe zone as margins, font size a share of the frame height,
  a translucent box or an outline. The text reaches ffmpeg only inside that file: ASS override
  blocks and line-break escapes in dialogue are neutralised (`ass_text`), so quotes, colons,
  brackets, percent signs, backslashes, emoji and newlines are shown as written, never interpreted.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from syncreel.schemas.platforms import PlatformSpec

READING_CHARS_PER_S = 15.0  # comfortable subtitle reading speed
MIN_CUE_S = 0.8
MAX_CUE_S = 7.0
GLYPH_WIDTH_EM = 0.58  # average advance of DejaVu Sans Bold, for the wrap estimate (libass wraps too)
SNAP_WINDOW_S = 0.5  # speech this close to a planned start or end moves it
SPEECH_FRAME_S = 0.02
SPEECH_MIN_GAP_S = 0.25
SPEECH_MIN_S = 0.15
SPEECH_MAX_SHARE = 0.8  # sound "speaking" more of the time than this is music or noise: no snapping
FONT_NAME = "DejaVu Sans"
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/TTF", "/usr/share/fonts/dejavu")
WORD_JOINER = "\u2060"  # invisible; breaks libass's "\N" / "\h" escapes where the dialogue has a backslash


@dataclass(frozen=True)
class DialogueTiming:
    """One line of dialogue on the spot's clock."""

    text: str
    scene_start_s: float
    scene_end_s: float
    start_s: float | None = None  # within the scene; None: spread over the scene with its neighbours


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str  # lines separated by "\n"


def _clean(text: str) -> str:
    """Printable text: line breaks kept as "\n", other control characters as spaces, runs collapsed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(" " if unicodedata.category(c) == "Cc" and c != "\n" else c for c in text)
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def reading_time(text: str) -> float:
    return min(MAX_CUE_S, max(MIN_CUE_S, len(text) / READING_CHARS_PER_S))


def plan_cues(lines: Sequence[DialogueTiming]) -> list[Cue]:
    """Cues from dialogue timings (module docstring), in time order, never overlapping."""
    by_scene: dict[tuple[float, float], list[DialogueTiming]] = {}
    for line in lines:
        if _clean(line.text):
            by_scene.setdefault((line.scene_start_s, line.scene_end_s), []).append(line)
    starts: list[tuple[float, float, str]] = []
    for (scene_start, scene_end), scene_lines in sorted(by_scene.items()):
        span = scene_end - scene_start
        for order, line in enumerate(scene_lines):
            offset = line.start_s if line.start_s is not None else span * order / len(scene_lines)
            starts.append((scene_start + min(max(0.0, offset), span), scene_end, _clean(line.text)))
    starts.sort(key=lambda item: item[0])
    cues = []
    for index, (start, scene_end, text) in enumerate(starts):
        following = starts[index + 1][0] if index + 1 < len(starts) else math.inf
        end = min(start + reading_time(text), following, scene_end)
        if end - start >= 0.1:
            cues.append(Cue(round(start, 3), round(end, 3), text))
    return cues


def speech_spans(samples: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """Where the (mono) sound has speech-like energy: frames well above the noise floor and not far
    below the loudest, merged over short pauses."""
    hop = max(1, int(rate * SPEECH_FRAME_S))
    count = len(samples) // hop
    if count == 0:
        return []
    frames = samples[: count * hop].reshape(count, hop).astype(np.float64)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    threshold = max(np.percentile(level, 10) + 12.0, level.max() - 35.0, -60.0)
    active = level >= threshold
    spans, start = [], None
    for i, on in enumerate(active):
        if on and start is None:
            start = i
        elif not on and start is not None:
            spans.append([start * SPEECH_FRAME_S, i * SPEECH_FRAME_S])
            start = None
    if start is not None:
        spans.append([start * SPEECH_FRAME_S, count * SPEECH_FRAME_S])
    merged: list[list[float]] = []
    for span in spans:
        if merged and span[0] - merged[-1][1] < SPEECH_MIN_GAP_S:
            merged[-1][1] = span[1]
        else:
            merged.append(span)
    return [(round(a, 3), round(b, 3)) for a, b in merged if b - a >= SPEECH_MIN_S]


def refine_with_speech(cues: Sequence[Cue], spans: Sequence[tuple[float, float]], duration_s: float) -> list[Cue]:
    """Snap each cue to the speech it overlaps (start to its onset, end to its offset, each only within
    ``SNAP_WINDOW_S``); unchanged when the sound is not speech-like (no spans, or sound nearly throughout)."""
    if not spans or sum(b - a for a, b in spans) > SPEECH_MAX_SHARE * max(duration_s, 1e-9):
        return list(cues)
    refined: list[Cue] = []
    for index, cue in enumerate(cues):
        near = [(a, b) for a, b in spans if b > cue.start_s - SNAP_WINDOW_S and a < cue.end_s + SNAP_WINDOW_S]
        start, end = cue.start_s, cue.end_s
        if near:
            if abs(near[0][0] - start) <= SNAP_WINDOW_S:
                start = near[0][0]
            if abs(near[-1][1] - end) <= SNAP_WINDOW_S:
                end = near[-1][1]
        floor = refined[-1].end_s if refined else 0.0
        ceiling = cues[index + 1].start_s if index + 1 < len(cues) else duration_s
        start, end = max(start, floor), min(end, ceiling)
        refined.append(Cue(round(start, 3), round(end, 3), cue.text) if end - start >= 0.1 else cue)
    return refined


def wrap(text: str, chars_per_line: int) -> list[str]:
    """Lines of at most ``chars_per_line`` characters, broken at spaces (a longer word is split);
    the dialogue's own line breaks are kept."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            while len(word) > chars_per_line:
                if line:
                    lines.append(line)
                    line = ""
                lines.append(word[:chars_per_line])
                word = word[chars_per_line:]
            if not word:
                continue
            if line and len(line) + 1 + len(word) > chars_per_line:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        if line:
            lines.append(line)
    return lines


def chars_per_line(spec: PlatformSpec) -> int:
    usable = spec.width * (1 - spec.safe_zone.left - spec.safe_zone.right)
    return max(8, int(usable / (font_px(spec) * GLYPH_WIDTH_EM)))


def font_px(spec: PlatformSpec) -> int:
    return max(8, round(spec.caption_font_size * spec.height))


def layout_cues(cues: Sequence[Cue], spec: PlatformSpec) -> list[Cue]:
    """Each cue wrapped for ``spec``'s caption width; one with more lines than the platform shows at
    once becomes consecutive cues, their times shared by length."""
    width, most = chars_per_line(spec), spec.caption_max_lines
    out: list[Cue] = []
    for cue in cues:
        lines = wrap(cue.text, width)
        pages = ["\n".join(lines[i : i + most]) for i in range(0, len(lines), most)]
        total = sum(len(page) for page in pages)
        start = cue.start_s
        for page in pages:
            end = cue.end_s if page is pages[-1] else start + (cue.end_s - cue.start_s) * len(page) / total
            out.append(Cue(round(start, 3), round(end, 3), page))
            start = end
    return out


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _sidecar_text(text: str) -> str:
    return text.replace("-->", "→")  # the cue-timing arrow inside text ends a cue in both formats


def write_srt(cues: Sequence[Cue], path: Path) -> Path:
    blocks = [
        f"{index}\n{_clock(c.start_s, ',')} --> {_clock(c.end_s, ',')}\n{_sidecar_text(c.text)}\n"
        for index, c in enumerate(cues, start=1)
    ]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def write_vtt(cues: Sequence[Cue], path: Path, language: str | None = None) -> Path:
    header = "WEBVTT" + (f"\nLanguage: {language}" if language else "") + "\n"
    escaped = (_sidecar_text(c.text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for c in cues)
    blocks = [
        f"{_clock(c.start_s, '.')} --> {_clock(c.end_s, '.')}\n{text}\n" for c, text in zip(cues, escaped, strict=True)
    ]
    path.write_text("\n".join([header, *blocks]), encoding="utf-8")
    return path


def ass_text(text: str) -> str:
    """Dialogue as literal ASS text: braces escaped (no override blocks), a backslash followed by an
    invisible word joiner (no \\N, \\h or \\n escapes), line breaks as \\N."""
    return text.replace("\\", "\\" + WORD_JOINER).replace("{", "\\{").replace("}", "\\}").replace("\n", "\\N")


def _ass_clock(seconds: float) -> str:
    centis = max(0, round(seconds * 100))
    hours, rest = divmod(centis, 360_000)
    minutes, rest = divmod(rest, 6000)
    secs, centis = divmod(rest, 100)
    return f"{hours}:{minutes:02d}:{secs:02d}.{centis:02d}"


def write_ass(cues: Sequence[Cue], spec: PlatformSpec, path: Path) -> Path:
    """The burn-in script for ``spec``: bottom-centred inside its safe zone (module docstring)."""
    size = font_px(spec)
    zone = spec.safe_zone
    margin_l, margin_r = round(zone.left * spec.width), round(zone.right * spec.width)
    margin_v = round(zone.bottom * spec.height)
    # BorderStyle 3 draws an opaque box (BackColour... here OutlineColour with alpha) padded by Outline.
    border_style, outline = (3, max(2, round(size * 0.18))) if spec.caption_box else (1, max(1, round(size * 0.08)))
    box = "&H60000000" if spec.caption_box else "&H00000000"
    style = (
        f"Style: Caption,{FONT_NAME},{size},&H00FFFFFF,&H00FFFFFF,{box},&H80000000,-1,0,0,0,100,100,0,0,"
        f"{border_style},{outline},0,2,{margin_l + outline},{margin_r + outline},{margin_v + outline},1"
    )
    lines = [
        "[Script Info]",
        "ScriptType: v4.00+",
        f"PlayResX: {spec.width}",
        f"PlayResY: {spec.height}",
        "WrapStyle: 0",
        "ScaledBorderAndShadow: yes",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, "
        "Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, "
        "Alignment, MarginL, MarginR, MarginV, Encoding",
        style,
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ]
    lines += [
        f"Dialogue: 0,{_ass_clock(c.start_s)},{_ass_clock(c.end_s)},Caption,,0,0,0,,{ass_text(c.text)}" for c in cues
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fonts_dir() -> Path | None:
    """A folder with the caption font, when this machine has one of the usual ones (else fontconfig's pick)."""
    return next((Path(d) for d in FONT_DIRS if (Path(d) / "DejaVuSans-Bold.ttf").is_file()), None)


def safe_zone_box(spec: PlatformSpec) -> tuple[int, int, int, int]:
    """The caption area in output pixels: x0, y0, x1, y1."""
    zone = spec.safe_zone
    return (
        round(zone.left * spec.width),
        round(zone.top * spec.height),
        round(spec.width * (1 - zone.right)),
        round(spec.height * (1 - zone.bottom)),
    )


def spot_cues(lines: Sequence[DialogueTiming], audio_path: Path | None = None, channel: int | None = None) -> list[Cue]:
    """`plan_cues`, refined by the speech found in ``audio_path``'s sound when it has clear speech
    (``channel``: use only that channel of the file, e.g. the dialogue stem of a stems WAV)."""
    cues = plan_cues(lines)
    if not cues or audio_path is None:
        return cues
    samples, rate, start_s = _speech_source(Path(audio_path), channel)
    if samples.size == 0:
        return cues
    spans = [(a + start_s, b + start_s) for a, b in speech_spans(samples, rate)]
    return refine_with_speech(cues, spans, start_s + samples.size / rate)


def _speech_source(path: Path, channel: int | None) -> tuple[np.ndarray, int, float]:
    """Mono samples, their rate and start time: one channel of the file, or all of it downmixed."""
    if channel is None:
        from syncreel.media.frames import audio_track

        track = audio_track(path)
        return (track.samples, track.rate, track.start_s) if track else (np.zeros(0, np.float32), 16_000, 0.0)
    from syncreel.media.normalize import read_audio

    audio, rate = read_audio(path, layout=_LAYOUTS.get(_channel_count(path), "stereo"))
    return (audio[channel] if channel < audio.shape[0] else np.zeros(0, np.float32)), rate, 0.0


_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _channel_count(path: Path) -> int:
    from syncreel.media.probe import open_input

    with open_input(path) as container:
        return container.streams.audio[0].codec_context.channels if container.streams.audio else 0


def read_subtitles(path: Path) -> list[Cue]:
    """Cues from an SRT or WebVTT file (timings and text; styling tags are kept as text)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    clock = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})"
    cues = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.strip("\n").split("\n")
        for index, line in enumerate(lines):
            match = re.match(rf"\s*{clock}\s*-->\s*{clock}", line)
            if match:
                h0, m0, s0, ms0, h1, m1, s1, ms1 = (int(v or 0) for v in match.groups())
                start = h0 * 3600 + m0 * 60 + s0 + ms0 / 1000
                end = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000
                body = _clean("\n".join(lines[index + 1 :]))
                if path.suffix.lower() == ".vtt":
                    body = html.unescape(body)
                if body and end > start:
                    cues.append(Cue(start, end, body))
                break
    return cues
