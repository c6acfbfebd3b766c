"""The platform registry: every deliverable spec in one place, as data.

Each entry says what a file must be to pass the platform's upload checks first time (frame, fps, H.264
profile / level / pixel format, rate control, GOP, AAC, loudness and true-peak ceiling, duration and
file-size limits, ``+faststart``) and how it is made from a master (reframing policy, burned-in
captions inside the safe zone). Safe zones and limits change often, so they live here and nowhere
else; a brief may add or override entries (``Brief.platform_overrides``).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

H264Level = Literal[
    "1", "1b", "1.1", "1.2", "1.3", "2", "2.1", "2.2", "3", "3.1", "3.2", "4", "4.1", "4.2", "5", "5.1", "5.2",
    "6", "6.1", "6.2",
]  # fmt: skip
X264Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"
]
X264_PRESETS: tuple[str, ...] = get_args(X264Preset)


class SafeZone(BaseModel):
    """Margins (fractions of the frame) that an app's UI covers; captions and key text stay inside."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    top: float = Field(default=0.05, ge=0, lt=0.5)
    bottom: float = Field(default=0.05, ge=0, lt=0.5)
    left: float = Field(default=0.05, ge=0, lt=0.5)
    right: float = Field(default=0.05, ge=0, lt=0.5)


class PlatformSpec(BaseModel):
    """What one platform accepts. Frame sizes are even (H.264 4:2:0 needs it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")
    label: str = Field(min_length=1, max_length=80)
    width: int = Field(ge=16, le=7680)
    height: int = Field(ge=16, le=7680)
    fps: float = Field(default=30.0, gt=0, le=120)
    # Every field that reaches ffmpeg is a closed set or a bounded number: a brief's platform override
    # can choose among values, never write text that ffmpeg would read as an option, filter or file.
    video_codec: Literal["h264"] = "h264"
    h264_profile: Literal["baseline", "main", "high"] = "high"
    h264_level: H264Level = "4.2"
    pix_fmt: Literal["yuv420p"] = "yuv420p"  # 8-bit 4:2:0, limited range: what every platform decodes
    crf: int = Field(default=20, ge=0, le=51)
    maxrate_kbps: int = Field(default=12_000, ge=100)
    bufsize_kbps: int = Field(default=24_000, ge=100)
    gop_seconds: float = Field(default=2.0, gt=0, le=10)
    audio_codec: Literal["aac"] = "aac"
    audio_rate: int = Field(default=48_000, ge=8_000, le=96_000)
    audio_bitrate_kbps: int = Field(default=192, ge=32, le=512)
    audio_channels: int = Field(default=2, ge=1, le=2)
    loudness_lufs: float = Field(default=-14.0, ge=-40, le=-5)
    true_peak_dbtp: float = Field(default=-1.0, ge=-10, le=0)
    min_duration_s: float = Field(default=1.0, ge=0)
    max_duration_s: float = Field(default=60.0, gt=0)
    max_file_mb: float = Field(default=500.0, gt=0)
    safe_zone: SafeZone = SafeZone()
    faststart: bool = True
    # "subject": crop around faces / motion / generator hints, blurred padding where they cannot fit;
    # "fit": always the whole picture over a blurred copy; "centre": always a centred crop.
    reframe: Literal["subject", "fit", "centre"] = "subject"
    # Burned-in captions (feeds that autoplay muted); SRT and WebVTT sidecars are written either way.
    burn_captions: bool = False
    caption_font_size: float = Field(default=0.045, gt=0.01, le=0.15)  # of the frame height: readable on a phone
    caption_max_lines: int = Field(default=2, ge=1, le=4)  # longer lines become consecutive captions
    caption_box: bool = True  # a translucent box behind the text; False: an outline only

    @field_validator("label")
    @classmethod
    def _printable(cls, label: str) -> str:
        if not label.isprintable():
            raise ValueError("control or unprintable characters are refused in a label")
        return label

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even for 4:2:0 H.264, got {value}")
        return value

    def render_key(self, *, with_captions: bool = True) -> dict[str, Any]:
        """The fields that change the rendered file: platforms with equal keys get one encode, the same
        bytes (the 9:16 platforms when no captions are burned in, for example). Limits and labels only
        change what QA expects; the safe zone only matters where captions are burned in
        (``with_captions``: the footage has captions to burn)."""
        ignored = {"name", "label", "min_duration_s", "max_duration_s", "max_file_mb"}
        if not (self.burn_captions and with_captions):
            ignored |= {"safe_zone", "caption_font_size", "caption_max_lines", "caption_box"}
        return self.model_dump(mode="json", exclude=ignored)

    @property
    def aspect(self) -> Fraction:
        return Fraction(self.width, self.height)

    @property
    def aspect_label(self) -> str:
        ratio = self.aspect
        return f"{ratio.numerator}:{ratio.denominator}"


def _spec(**fields: object) -> PlatformSpec:
    return PlatformSpec.model_validate(fields)


_VERTICAL_SAFE = SafeZone(top=0.14, bottom=0.30, left=0.06, right=0.16)

PLATFORMS: dict[str, PlatformSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            name="tiktok",
            label="TikTok in-feed 9:16",
            width=1080,
            height=1920,
            max_duration_s=60,
            max_file_mb=500,
            safe_zone=_VERTICAL_SAFE,
            burn_captions=True,
        ),
        _spec(
            name="instagram_reels",
            label="Instagram Reels 9:16",
            width=1080,
            height=1920,
            max_duration_s=90,
            max_file_mb=4000,
            safe_zone=_VERTICAL_SAFE,
            burn_captions=True,
        ),
        _spec(
            name="youtube_shorts",
            label="YouTube Shorts 9:16",
            width=1080,
            height=1920,
            max_duration_s=60,
            max_file_mb=2000,
            safe_zone=SafeZone(top=0.10, bottom=0.25, left=0.06, right=0.14),
            burn_captions=True,
        ),
        _spec(
            name="instagram_feed",
            label="Instagram feed 4:5",
            width=1080,
            height=1350,
            max_duration_s=60,
            max_file_mb=4000,
            safe_zone=SafeZone(top=0.06, bottom=0.10),
            burn_captions=True,
        ),
        _spec(
            name="facebook_feed",
            label="Facebook feed 4:5",
            width=1080,
            height=1350,
            max_duration_s=240,
            max_file_mb=4000,
            safe_zone=SafeZone(top=0.06, bottom=0.12),
            burn_captions=True,
        ),
        _spec(name="square", label="Square 1:1", width=1080, height=1080, max_duration_s=60, max_file_mb=4000),
        _spec(
            name="youtube",
            label="YouTube 16:9",
            width=1920,
            height=1080,
            max_duration_s=600,
            max_file_mb=10_000,
            crf=18,
            maxrate_kbps=16_000,
            bufsize_kbps=32_000,
            safe_zone=SafeZone(top=0.05, bottom=0.12),
        ),
        _spec(
            name="web",
            label="Web 16:9",
            width=1920,
            height=1080,
            max_duration_s=300,
            max_file_mb=1000,
            loudness_lufs=-16.0,
        ),
    )
}


def resolve_platforms(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, PlatformSpec]:
    """The registry with a brief's overrides applied.

    An override of a registered platform changes only the fields it names (``{tiktok: {max_duration_s: 30}}``);
    an override with a new name defines a platform and needs at least width and height. Raises pydantic's
    ValidationError when a merged spec is invalid.
    """
    merged = dict(PLATFORMS)
    for name, fields in (overrides or {}).items():
        base = PLATFORMS[name].model_dump() if name in PLATFORMS else {"label": name}
        merged[name] = PlatformSpec.model_validate({**base, **fields, "name": name})
    return merged
