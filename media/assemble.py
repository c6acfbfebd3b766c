"""Join scene masters into one spot per language: same picture format throughout, click-free joins."""

from __future__ import annotations

from pathlib import Path

from media.errors import MediaError
from media.ffmpeg import BITEXACT, run
from media.probe import MediaInfo, probe


def assemble_spot(clips: list[Path], out: Path, *, audio_crossfade_s: float = 0.04) -> MediaInfo:
    """Concatenate ``clips`` (each with video and audio) into ``out`` at the first clip's size and rate.

    Each clip's audio fades in and out over half of ``audio_crossfade_s`` at the joins, so a cut never
    clicks; the spot lasts the sum of the clips.
    """
    if not clips:
        raise MediaError(out, "no scene clips to assemble")
    infos = [probe(clip) for clip in clips]
    for clip, info in zip(clips, infos, strict=True):
        if info.video is None or info.audio is None:
            raise MediaError(clip, "a scene clip needs both a video and an audio stream")
    first = infos[0].video
    fade = audio_crossfade_s / 2
    parts, labels = [], []
    for index, info in enumerate(infos):
        duration = info.video.frames / info.video.fps if info.video.frames else info.duration_s
        parts.append(
            f"[{index}:v]scale={first.width}:{first.height}:flags=bicubic,fps={first.fps},setsar=1,"
            f"trim=duration={duration:.6f},setpts=PTS-STARTPTS[v{index}]"
        )
        fades = []
        if index > 0:
            fades.append(f"afade=t=in:d={fade:.4f}")
        if index < len(infos) - 1:
            fades.append(f"afade=t=out:st={max(0.0, duration - fade):.6f}:d={fade:.4f}")
        parts.append(
            f"[{index}:a]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,"
            f"apad,atrim=duration={duration:.6f},asetpts=PTS-STARTPTS" + "".join(f",{f}" for f in fades) + f"[a{index}]"
        )
        labels.append(f"[v{index}][a{index}]")
    parts.append(f"{''.join(labels)}concat=n={len(infos)}:v=1:a=1[v][a]")
    inputs = [arg for clip in clips for arg in ("-i", str(clip))]
    run(
        [
            *inputs,
            "-filter_complex",
            ";".join(parts),
            "-map",
            "[v]",
            "-map",
            "[a]",
            "-c:v",
            "libx264",
            "-preset",
            "fast",
            "-crf",
            "16",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "256k",
            *BITEXACT,
            "-movflags",
            "+faststart",
            "-y",
            str(out),
        ],
        what="assembling the spot",
        path=out,
    )
    return probe(out)
