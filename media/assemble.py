"""Join scene masters into one spot per language: same picture format throughout, click-free joins.

``assemble_spot`` concatenates clips with their own sound; ``assemble_layered`` is the full edit:
cuts snapped to the music's beats (``snap_cuts``) and the layered, ducked mix of media/mix.py."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from syncreel.media.errors import MediaError
from syncreel.media.ffmpeg import BITEXACT, run
from syncreel.media.mix import LAYERS, SCENE_MIX, MixSettings, mix_spot, read_stems
from syncreel.media.mix import RATE as MIX_RATE
from syncreel.media.mix import write_wav as write_mix_wav
from syncreel.media.normalize import read_audio
from syncreel.media.probe import MediaInfo, VideoInfo, probe

SPOT_AUDIO_RATE = 48_000


def _probe_clips(clips: list[Path], out: Path) -> tuple[list[MediaInfo], VideoInfo, Fraction]:
    """Probe the scene clips (each must have a picture): their infos, the first one's video, its rate."""
    if not clips:
        raise MediaError(out, "no scene clips to assemble")
    infos = [probe(clip) for clip in clips]
    for clip, info in zip(clips, infos, strict=True):
        if info.video is None or info.is_image:
            raise MediaError(clip, "a scene clip needs a video stream")
    first = infos[0].video
    assert first is not None
    return infos, first, Fraction(first.fps).limit_denominator(1001)


def _clip_seconds(info: MediaInfo) -> float:
    """A scene lasts as long as its pictures: frames / fps (the container duration may include audio slack)."""
    video = info.video
    if video is not None and video.frames and video.fps:
        return video.frames / video.fps
    return info.duration_s


def _video_chain(index: int, first: VideoInfo, rate: Fraction, seconds: float) -> str:
    return (
        f"[{index}:v]scale={first.width}:{first.height}:flags=bicubic,setsar=1,fps={rate},"
        f"trim=duration={seconds:.6f},setpts=PTS-STARTPTS,format=yuv420p[v{index}]"
    )


def _audio_chain(index: int, info: MediaInfo, seconds: float, fade_in: float, fade_out: float) -> str:
    source = (
        f"[{index}:a]aresample={SPOT_AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,apad"
        if info.audio is not None
        else f"anullsrc=r={SPOT_AUDIO_RATE}:cl=stereo"  # a silent scene keeps its place on the timeline
    )
    chain = [source, f"atrim=duration={seconds:.6f}", "asetpts=PTS-STARTPTS"]
    if fade_in:
        chain.append(f"afade=t=in:d={fade_in:.4f}")
    if fade_out:
        chain.append(f"afade=t=out:st={max(0.0, seconds - fade_out):.6f}:d={fade_out:.4f}")
    return ",".join(chain) + f"[a{index}]"


def assemble_spot(clips: list[Path], out: Path, *, audio_crossfade_s: float = 0.04) -> MediaInfo:
    """Concatenate scene ``clips`` into ``out`` (MP4, H.264 + AAC 48 kHz stereo).

    Every clip is scaled and rate-converted to the first clip's frame size and fps. At each join the
    outgoing sound fades out and the incoming one fades in, each over half of ``audio_crossfade_s``, so
    a cut never clicks; the spot lasts the sum of the clips' picture durations.
    """
    out = Path(out)
    infos, first, rate = _probe_clips(clips, out)
    fade = audio_crossfade_s / 2
    graph, pairs = [], []
    for index, info in enumerate(infos):
        seconds = _clip_seconds(info)
        graph.append(_video_chain(index, first, rate, seconds))
        fade_in = fade if index > 0 else 0.0
        fade_out = fade if index < len(infos) - 1 else 0.0
        graph.append(_audio_chain(index, info, seconds, fade_in, fade_out))
        pairs.append(f"[v{index}][a{index}]")
    graph.append(f"{''.join(pairs)}concat=n={len(infos)}:v=1:a=1[v][a]")
    inputs = [arg for clip in clips for arg in ("-i", str(clip))]
    maps = ["-filter_complex", ";".join(graph), "-map", "[v]", "-map", "[a]"]
    video = ["-c:v", "libx264", "-preset", "fast", "-crf", "16", "-pix_fmt", "yuv420p"]
    audio = ["-c:a", "aac", "-b:a", "256k", "-ar", str(SPOT_AUDIO_RATE)]
    out.parent.mkdir(parents=True, exist_ok=True)
    run(
        [*inputs, *maps, *video, *audio, *BITEXACT, "-movflags", "+faststart", "-y", str(out)],
        what="assembling the spot",
        path=out,
    )
    return probe(out)


# --- the edit with beat-synced cuts and a layered mix ----------------------------------------------

MIN_SCENE_S = 0.5  # snapping never leaves a scene shorter than this


@dataclass(frozen=True)
class Cut:
    """One cut between scenes: where the scenes' durations put it, where the edit put it, and the beat."""

    before_scene: int  # index of the scene that starts at this cut
    nominal_s: float
    cut_s: float
    beat_s: float | None  # the beat it was snapped to (None: no beat within the tolerance)
    downbeat: bool

    def to_dict(self) -> dict[str, Any]:
        offset = None if self.beat_s is None else round((self.cut_s - self.beat_s) * 1000, 1)
        return {
            "before_scene": self.before_scene,
            "nominal_s": round(self.nominal_s, 4),
            "cut_s": round(self.cut_s, 4),
            "beat_s": None if self.beat_s is None else round(self.beat_s, 4),
            "downbeat": self.downbeat,
            "offset_from_beat_ms": offset,
            "moved_ms": round((self.cut_s - self.nominal_s) * 1000, 1),
        }


def snap_cuts(
    durations_s: list[float],
    fps: float,
    beats_s: tuple[float, ...] | list[float] = (),
    downbeats_s: tuple[float, ...] | list[float] = (),
    tolerance_s: float = 0.25,
) -> list[Cut]:
    """The cuts between scenes of ``durations_s``, each moved to the nearest downbeat within
    ``tolerance_s`` (else the nearest beat; else left where it was), then onto the nearest frame
    boundary, so a snapped cut lies within half a frame of its beat. No scene gets shorter than
    MIN_SCENE_S, and the spot's end does not move."""
    nominal = np.cumsum(durations_s)[:-1]
    end = float(np.sum(durations_s))
    downbeats = set(round(t, 6) for t in downbeats_s)
    cuts: list[Cut] = []
    previous = 0.0
    for index, at in enumerate(nominal, start=1):
        latest = end - MIN_SCENE_S * (len(durations_s) - index)
        fits = [b for b in beats_s if abs(b - at) <= tolerance_s and previous + MIN_SCENE_S <= b <= latest]
        strong = [b for b in fits if round(b, 6) in downbeats]
        choice = min(strong or fits, key=lambda b: abs(b - at), default=None)
        target = at if choice is None else choice
        cut = round(target * fps) / fps
        cuts.append(Cut(index, float(at), cut, choice, choice is not None and round(choice, 6) in downbeats))
        previous = cut
    return cuts


@dataclass
class SpotAssembly:
    info: MediaInfo
    cuts: list[Cut]
    mix: dict[str, Any]
    stems: Path | None  # the spot's layers, one channel each (LAYERS order, as mixed), for an editor
    stem_names: tuple[str, ...]


def _scene_layers(clip: Path, info: MediaInfo, stems: Path | None, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    if stems is not None:
        data = read_stems(stems)
        layers: dict[str, np.ndarray] = {}
        for name, audio in zip(names, data, strict=False):
            layer = name if name in LAYERS else "effects"
            layers[layer] = layers.get(layer, np.zeros_like(audio)) + audio
        return layers
    if info.audio is None:
        return {}
    audio, _ = read_audio(clip, MIX_RATE)
    return {SCENE_MIX: audio[0]}


def assemble_layered(
    clips: list[Path],
    out: Path,
    *,
    stems: list[Path | None] | None = None,
    stem_names: list[tuple[str, ...]] | None = None,
    music: Path | None = None,
    beats_s: tuple[float, ...] | list[float] = (),
    downbeats_s: tuple[float, ...] | list[float] = (),
    beat_sync: bool = False,
    snap_tolerance_s: float = 0.25,
    mix: MixSettings = MixSettings(),  # noqa: B008 - frozen
    stems_out: Path | None = None,
) -> SpotAssembly:
    """Join scene ``clips`` into ``out`` with the layered mix of media/mix.py: each scene's stems
    (``stems[i]``, channels named ``stem_names[i]``; its own sound when it has none), the ``music``
    track under everything, ducked under dialogue. With ``beat_sync`` the cuts move onto the music's
    beats (``snap_cuts``); a scene made longer by a snap holds its last picture. ``stems_out``: also
    write the mixed layers as one WAV, a channel each."""
    out = Path(out)
    infos, first, rate = _probe_clips(clips, out)
    durations = [_clip_seconds(info) for info in infos]
    grid = (beats_s, downbeats_s) if beat_sync else ((), ())
    cuts = snap_cuts(durations, float(rate), *grid, tolerance_s=snap_tolerance_s)
    frame_edges = [0, *(round(cut.cut_s * rate) for cut in cuts), round(sum(durations) * rate)]
    edges_s = [float(frames / rate) for frames in frame_edges]
    stems = stems or [None] * len(clips)
    stem_names = stem_names or [()] * len(clips)
    scene_layers = [
        _scene_layers(clip, info, stem, names)
        for clip, info, stem, names in zip(clips, infos, stems, stem_names, strict=True)
    ]
    music_audio = read_audio(music, MIX_RATE, layout="stereo")[0] if music is not None else None
    spot_mix = mix_spot(scene_layers, edges_s, music_audio, mix)

    out.parent.mkdir(parents=True, exist_ok=True)
    mix_wav = write_mix_wav(spot_mix.mix, out.with_name(f".{out.stem}.mix.wav"))
    try:
        _encode_layered(clips, first, rate, frame_edges, durations, mix_wav, out)
    finally:
        mix_wav.unlink(missing_ok=True)
    names = tuple(spot_mix.layers)
    if stems_out is not None:
        write_mix_wav(np.stack([spot_mix.layers[name] for name in names]), stems_out)
    report = {**spot_mix.report(), "settings": mix.to_dict(), "music": music is not None}
    return SpotAssembly(probe(out, count_frames=True), cuts, report, stems_out, names)


def _encode_layered(
    clips: list[Path],
    first: VideoInfo,
    rate: Fraction,
    frame_edges: list[int],
    durations: list[float],
    mix_wav: Path,
    out: Path,
) -> None:
    """The spot: each scene's picture cut to its frames between ``frame_edges`` (its last picture held
    when a snapped cut made the scene longer than its clip), under the mixed sound of ``mix_wav``."""
    graph, pairs = [], []
    for index, seconds in enumerate(durations):
        frames = frame_edges[index + 1] - frame_edges[index]
        hold = max(0.0, frames / rate - seconds) + 1 / rate
        graph.append(
            f"[{index}:v]scale={first.width}:{first.height}:flags=bicubic,setsar=1,fps={rate},"
            f"tpad=stop_mode=clone:stop_duration={float(hold):.6f},trim=end_frame={frames},"
            f"setpts=PTS-STARTPTS,format=yuv420p[v{index}]"
        )
        pairs.append(f"[v{index}]")
    graph.append(f"{''.join(pairs)}concat=n={len(durations)}:v=1:a=0[v]")
    inputs = [arg for clip in clips for arg in ("-i", str(clip))] + ["-i", str(mix_wav)]
    maps = ["-filter_complex", ";".join(graph), "-map", "[v]", "-map", f"{len(clips)}:a"]
    video = ["-c:v", "libx264", "-preset", "fast", "-crf", "16", "-pix_fmt", "yuv420p"]
    audio = ["-c:a", "aac", "-b:a", "256k", "-ar", str(SPOT_AUDIO_RATE), "-t", f"{float(frame_edges[-1] / rate):.6f}"]
    run(
        [*inputs, *maps, *video, *audio, *BITEXACT, "-movflags", "+faststart", "-y", str(out)],
        what="assembling the spot",
        path=out,
    )
