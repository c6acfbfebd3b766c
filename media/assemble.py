"""Join scene masters into one spot per language: same picture format throughout, click-free joins."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from media.errors import MediaError
from media.ffmpeg import BITEXACT, run
from media.probe import MediaInfo, VideoInfo, probe

SPOT_AUDIO_RATE = 48_000


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
    if not clips:
        raise MediaError(out, "no scene clips to assemble")
    infos = [probe(clip) for clip in clips]
    for clip, info in zip(clips, infos, strict=True):
        if info.video is None or info.is_image:
            raise MediaError(clip, "a scene clip needs a video stream")
    first = infos[0].video
    assert first is not None
    rate = Fraction(first.fps).limit_denominator(1001)
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
