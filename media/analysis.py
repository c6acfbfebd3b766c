"""What a reference holds, by role: the numbers the edit, the conditioning and the report use.

- music (audio): tempo, beat and downbeat times, sections (media/beats.py);
- voice (audio): speech segments and the speech level;
- sfx (audio): onset times and level;
- motion / footage / style / continue (video): per-frame motion energy, a motion track (where the
  motion is, frame by frame: usable as conditioning), shot boundaries;
- character / style / product / background / first_frame (image): face box (the detector the lip-sync
  QA uses, media/faces.py) and dominant colours.

Every result is a plain JSON-ready dict; ``analyse_file`` runs every analysis that fits a file (for
``syncreel analyze``). Shot boundaries come from media/shots.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np

from syncreel.media import beats, shots
from syncreel.media.errors import MediaError
from syncreel.media.frames import Picture, pictures
from syncreel.media.normalize import read_audio
from syncreel.media.probe import open_input, probe

SPEECH_RATE = 16_000
SPEECH_FRAME_S = 0.02
SPEECH_MIN_GAP_S = 0.25  # pauses shorter than this stay inside one segment
SPEECH_MIN_S = 0.12
SPEECH_BELOW_PEAK_DB = 30.0  # frames this far below the loudest are not speech
MOTION_GRID = 64  # luma grid side for motion and cuts
MOTION_NOISE = 8.0  # luma change (0-255) below this is compression noise
COLOURS = 5


def _r(value: float, digits: int = 3) -> float:
    return round(float(value), digits)


def analyse_music(path: Path) -> dict[str, Any]:
    samples, _ = read_audio(path, beats.RATE)
    grid = beats.beat_grid(samples[0])
    return {"type": "music", **grid.to_dict()}


def _frame_levels(samples: np.ndarray, rate: int, frame_s: float) -> np.ndarray:
    step = max(1, int(rate * frame_s))
    usable = samples[: len(samples) // step * step]
    if usable.size == 0:
        return np.zeros(0)
    rms = np.sqrt(np.square(usable.astype(np.float64)).reshape(-1, step).mean(1))
    return 20 * np.log10(np.maximum(rms, 1e-7))


def speech_segments(samples: np.ndarray, rate: int = SPEECH_RATE) -> list[tuple[float, float]]:
    """(start, end) seconds of speech: frames within SPEECH_BELOW_PEAK_DB of the loudest and above the
    noise floor by 10 dB, short pauses bridged, blips dropped."""
    levels = _frame_levels(samples, rate, SPEECH_FRAME_S)
    if levels.size == 0:
        return []
    floor = np.percentile(levels, 10)
    threshold = max(levels.max() - SPEECH_BELOW_PEAK_DB, floor + 10.0)
    active = levels > threshold
    segments: list[list[float]] = []
    for index in np.flatnonzero(active):
        start, end = index * SPEECH_FRAME_S, (index + 1) * SPEECH_FRAME_S
        if segments and start - segments[-1][1] < SPEECH_MIN_GAP_S:
            segments[-1][1] = end
        else:
            segments.append([start, end])
    return [(s, e) for s, e in segments if e - s >= SPEECH_MIN_S]


def analyse_voice(path: Path) -> dict[str, Any]:
    samples, rate = read_audio(path, SPEECH_RATE)
    mono = samples[0]
    segments = speech_segments(mono, rate)
    spoken = np.concatenate([mono[int(s * rate) : int(e * rate)] for s, e in segments]) if segments else mono[:0]
    rms = float(np.sqrt(np.mean(np.square(spoken)))) if spoken.size else 0.0
    peak = float(np.abs(mono).max()) if mono.size else 0.0
    return {
        "type": "voice",
        "duration_s": _r(len(mono) / rate),
        "speech_segments": [{"start_s": _r(s), "end_s": _r(e)} for s, e in segments],
        "speech_s": _r(sum(e - s for s, e in segments)),
        "speech_level_dbfs": _r(20 * np.log10(rms), 2) if rms > 0 else None,
        "peak_dbfs": _r(20 * np.log10(peak), 2) if peak > 0 else None,
    }


def analyse_sfx(path: Path) -> dict[str, Any]:
    samples, _ = read_audio(path, beats.RATE)
    mono = samples[0]
    mel, _ = beats.log_mel(mono)
    envelope = beats.onset_strength(mel)
    threshold = envelope.mean() + 2 * envelope.std()
    peaks = [
        f
        for f in range(1, len(envelope) - 1)
        if envelope[f] > threshold and envelope[f] >= envelope[f - 1] and envelope[f] > envelope[f + 1]
    ]
    onsets = beats.refine_onsets(mono, np.asarray(peaks) * beats.HOP / beats.RATE) if peaks else np.zeros(0)
    peak = float(np.abs(mono).max()) if mono.size else 0.0
    return {
        "type": "sfx",
        "duration_s": _r(len(mono) / beats.RATE),
        "onsets_s": [_r(t) for t in onsets],
        "peak_dbfs": _r(20 * np.log10(peak), 2) if peak > 0 else None,
    }


def analyse_motion(path: Path) -> dict[str, Any]:
    """Per source picture: motion energy (RMS luma change, 0-255 scale), where the motion is (the
    centroid of the change, 0..1 of width and height; none when still), and the shot boundaries."""
    times: list[float] = []
    energy: list[float] = []
    centroid: list[tuple[float, float] | None] = []
    lumas: list[np.ndarray] = []
    previous: np.ndarray | None = None
    last_source, width, height = -1, 0, 0
    for shown in pictures(path):
        if shown.source_index == last_source:
            continue
        last_source = shown.source_index
        picture = shown.picture
        width, height = picture.width, picture.height
        step = max(1, min(width, height) // MOTION_GRID)
        lumas.append(picture.luma(step).copy())
        luma = lumas[-1].astype(np.float32)
        times.append(shown.source_centre_s)
        if previous is None or previous.shape != luma.shape:
            energy.append(0.0)
            centroid.append(None)
        else:
            change = np.abs(luma - previous)
            energy.append(float(np.sqrt(np.mean(change**2))))
            moving = np.where(change > MOTION_NOISE, change, 0.0)  # codec noise does not move
            total = float(moving.sum())
            if np.count_nonzero(moving) >= max(4, moving.size // 1000):
                ys, xs = np.mgrid[0 : change.shape[0], 0 : change.shape[1]]
                x = (xs * moving).sum() / total / change.shape[1]
                y = (ys * moving).sum() / total / change.shape[0]
                centroid.append((_r(x), _r(y)))
            else:
                centroid.append(None)
        previous = luma
    if not times:
        raise MediaError(path, "no pictures to analyse")
    cuts = [times[index] - (times[1] - times[0]) / 2 for index in shots.shot_boundaries(lumas)]
    series = np.asarray(energy)
    return {
        "type": "motion",
        "width": width,
        "height": height,
        "frames": len(times),
        "frame_times_s": [_r(t) for t in times],
        "motion_energy": [_r(e, 2) for e in energy],
        "motion_track": [list(c) if c else None for c in centroid],
        "mean_motion_energy": _r(series.mean(), 2),
        "shot_boundaries_s": [_r(t) for t in cuts],
        "shots": len(cuts) + 1,
    }


def _image_frame(path: Path) -> av.VideoFrame:
    try:
        with open_input(path) as container:
            for frame in container.decode(video=0):
                return frame
    except av.FFmpegError as exc:
        raise MediaError(path, f"cannot decode the image ({exc.strerror})") from None
    raise MediaError(path, "no picture in the file")


def dominant_colours(rgb: np.ndarray, count: int = COLOURS, iterations: int = 12) -> list[dict[str, Any]]:
    """The ``count`` main colours by k-means on a 64-px thumbnail, largest share first (deterministic:
    seeded from the luminance quantiles)."""
    step = max(1, max(rgb.shape[:2]) // 64)
    pixels = rgb[::step, ::step].reshape(-1, 3).astype(np.float32)
    order = np.argsort(pixels @ np.array([0.299, 0.587, 0.114], np.float32))
    centres = pixels[order[np.linspace(0, len(order) - 1, count).astype(int)]].copy()
    for _ in range(iterations):
        labels = np.argmin(((pixels[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        for k in range(count):
            members = pixels[labels == k]
            if len(members):
                centres[k] = members.mean(0)
    labels = np.argmin(((pixels[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    shares = np.bincount(labels, minlength=count) / len(labels)
    merged: dict[str, float] = {}
    for k in np.argsort(shares)[::-1]:
        if shares[k] <= 0:
            continue
        r, g, b = (int(round(v)) for v in np.clip(centres[k], 0, 255))
        key = f"#{r:02X}{g:02X}{b:02X}"
        merged[key] = merged.get(key, 0.0) + float(shares[k])
    return [{"hex": key, "share": _r(share)} for key, share in merged.items()]


def analyse_image(path: Path) -> dict[str, Any]:
    """Face boxes (normalized x0, y0, x1, y1, best first) and dominant colours."""
    frame = _image_frame(path)
    rgb = frame.to_ndarray(format="rgb24")
    result: dict[str, Any] = {
        "type": "image",
        "width": frame.width,
        "height": frame.height,
        "dominant_colours": dominant_colours(rgb),
    }
    try:
        from syncreel.media.faces import FaceDetector, FaceModelError
    except ImportError as exc:  # the face runtime is optional for analysis; the QA needs it anyway
        result.update(faces=None, face_error=f"face detector unavailable ({exc})")
        return result
    try:
        detections = FaceDetector().detect(Picture(frame.reformat(format="yuv420p")))
    except FaceModelError as exc:
        result.update(faces=None, face_error=str(exc))
        return result
    result["faces"] = [
        {
            "score": _r(d.score),
            "box": [
                _r(d.box[0] / frame.width),
                _r(d.box[1] / frame.height),
                _r(d.box[2] / frame.width),
                _r(d.box[3] / frame.height),
            ],
        }
        for d in detections
    ]
    return result


_IMAGE_ROLES = ("character", "style", "product", "background", "first_frame")
_VIDEO_ROLES = ("motion", "style", "footage", "continue")


def analyse_reference(path: Path, kind: str, role: str) -> dict[str, Any]:
    """The analysis a reference of this kind and role gets (a normalized file: PNG, MP4 or FLAC)."""
    path = Path(path)
    if kind == "image":
        return analyse_image(path)
    if kind == "video":
        return analyse_motion(path)
    if kind == "audio":
        return {"music": analyse_music, "voice": analyse_voice}.get(role, analyse_sfx)(path)
    raise MediaError(path, f"unknown reference kind {kind!r}; accepted: image, video, audio")


def analyse_file(path: str | Path) -> dict[str, Any]:
    """Every analysis that fits the file: image → faces and colours; video → motion and shots (and
    faces and colours of its first picture); audio → music and voice (a producer checks a track before
    briefing it)."""
    path = Path(path)
    info = probe(path)
    result: dict[str, Any] = {"file": str(path), "duration_s": _r(info.duration_s), "format": info.format}
    if info.is_image:
        result["image"] = analyse_image(path)
        return result
    if info.video is not None:
        result["motion"] = analyse_motion(path)
        result["image"] = analyse_image(path)
    if info.audio is not None:
        result["music"] = analyse_music(path)
        result["voice"] = analyse_voice(path)
    return result


def describe(analysis: dict[str, Any]) -> list[str]:
    """One analysis (a dict with its ``type``) as the lines a producer reads: tempo, beats, downbeats and
    sections; speech segments and level; shots and motion; faces and colours. Plain text, for the CLI's
    ``analyze`` and the run report alike."""
    kind = analysis.get("type")
    if kind == "music":
        beat_times = analysis["beats_s"]
        shown = ", ".join(f"{t:.2f}" for t in beat_times[:8]) + (" …" if len(beat_times) > 8 else "")
        downbeats = ", ".join(f"{t:.2f}" for t in analysis["downbeats_s"][:6])
        sections = ", ".join(
            f"{part['start_s']:.1f}–{part['end_s']:.1f} s ({part['level_db']:.0f} dB)" for part in analysis["sections"]
        )
        confidence = analysis["downbeat_confidence"]
        return [
            f"tempo {analysis['tempo_bpm']:.1f} BPM, {len(beat_times)} beats: {shown}",
            f"downbeats ({analysis['beats_per_bar']}/4, confidence {confidence:.2f}): {downbeats}",
            f"sections: {sections}",
        ]
    if kind == "voice":
        spans = ", ".join(f"{s['start_s']:.2f}–{s['end_s']:.2f}" for s in analysis["speech_segments"][:8])
        level = analysis["speech_level_dbfs"]
        return [
            f"speech {analysis['speech_s']:.2f} s in {len(analysis['speech_segments'])} segments"
            f"{f', level {level:.1f} dBFS' if level is not None else ''}: {spans or 'none'}"
        ]
    if kind == "sfx":
        onsets = ", ".join(f"{t:.2f}" for t in analysis["onsets_s"][:12]) or "none"
        return [f"{len(analysis['onsets_s'])} onset(s) at: {onsets}"]
    if kind == "motion":
        cuts = ", ".join(f"{t:.2f}" for t in analysis["shot_boundaries_s"]) or "none"
        return [
            f"{analysis['shots']} shot(s), cuts at: {cuts}; mean motion energy {analysis['mean_motion_energy']:.1f}"
            f" over {analysis['frames']} frames"
        ]
    if kind == "image":
        faces = analysis.get("faces")
        found = "detector unavailable" if faces is None else f"{len(faces)} face(s)"
        if faces:
            found += ": " + "; ".join(f"box {f['box']} (score {f['score']:.2f})" for f in faces[:3])
        colours = ", ".join(f"{c['hex']} {c['share'] * 100:.0f}%" for c in analysis["dominant_colours"])
        return [f"{found}; colours {colours}"]
    return []
