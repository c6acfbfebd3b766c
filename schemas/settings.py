"""Configuration, 12-factor style: every setting comes from a ``SYNCREEL_`` environment variable."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from syncreel.schemas.platforms import X264Preset

# Python's logging levels by name, as `--log-level` and SYNCREEL_LOG_LEVEL take them.
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYNCREEL_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///.syncreel/state.db",
        description="SQLAlchemy URL of the run-state database (postgresql+psycopg://... in production).",
    )
    storage_url: str = Field(
        default="file://.syncreel/assets",
        description="Where assets live: file://FOLDER or s3://bucket/prefix (AWS env + AWS_ENDPOINT_URL).",
    )
    work_dir: Path = Field(
        default=Path(".syncreel/work"),
        description="Local scratch space for files being rendered and for downloads from the asset store.",
    )
    backend: str = Field(default="builtin", description="Generation backend: builtin | ltx2.")
    # The ltx2 backend (model/ltx2.py); read only when backend is ltx2.
    ltx2_path: Path | None = Field(
        default=None,
        description="Local diffusers-format LTX-2 checkpoint directory (model_index.json + component folders); "
        "never downloaded.",
    )
    ltx2_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto", description="LTX-2 weights' precision; auto: bfloat16 on CUDA, float32 on a CPU."
    )
    ltx2_cpu_offload: bool = Field(
        default=False, description="Keep LTX-2's models in CPU memory and move each to the GPU only while it runs."
    )
    ltx2_vae_tiling: bool = Field(
        default=False, description="Decode LTX-2's video latents in overlapping spatial tiles."
    )
    ltx2_stg_scale: float = Field(
        default=1.0, ge=0, description="LTX-2 spatio-temporal guidance scale; 0 turns it off."
    )
    ltx2_stg_blocks: tuple[int, ...] = Field(
        default=(28,), description="Transformer blocks that spatio-temporal guidance perturbs (JSON list, e.g. [28])."
    )
    # The speech stage (tasks/speak.py): a neural voice the operator installed, per brief language.
    piper_voices: dict[str, Path] = Field(
        default_factory=dict,
        description="Piper voice models (.onnx, with their .onnx.json beside) per language, JSON, e.g. "
        '{"en": "/models/en_US-lessac-medium.onnx"}: those languages are spoken by Piper (pip install '
        "piper-tts), the others by espeak-ng; never downloaded.",
    )
    gpu_deployment: str | None = Field(
        default=None, description="Prefect deployment that scene generation is dispatched to; unset: in-process."
    )
    inbox_url: str = Field(
        default="file://.syncreel/inbox",
        description="Where the campaign-inbox schedule looks for new briefs: file://FOLDER or s3://bucket/prefix "
        "(handled ones move to handled/ under it, invalid ones to rejected/).",
    )
    campaign_deployment: str = Field(
        default="produce-campaign/production",
        description="Prefect deployment that `syncreel submit` and the inbox run.",
    )
    x264_preset: X264Preset = Field(default="veryfast", description="libx264 speed/size trade-off for deliverables.")
    log_level: LogLevel = Field(
        default="INFO",
        description="The default of `syncreel run --log-level`: the lowest level of the run's log lines kept in "
        "the Prefect API and syncreel.log (a worker's own level is Prefect's PREFECT_LOGGING_LEVEL).",
    )
    # Reference ingestion (tasks/ingest.py, media/fetch.py).
    reference_roots: tuple[Path, ...] = Field(
        default=(),
        description="Folders besides the brief's own that local reference paths may point into (JSON list); "
        "a path outside them, through '..' or a symlink, is refused.",
    )
    reference_private_networks: tuple[str, ...] = Field(
        default=(),
        description='Private, loopback or link-local networks (CIDR, JSON list, e.g. ["10.20.0.0/16"]) that '
        "https references may reach; by default only public addresses are fetched.",
    )
    reference_max_download_bytes: int = Field(
        default=500_000_000, gt=0, description="Largest https reference fetched; a longer body is cut off and refused."
    )
    reference_download_timeout_s: float = Field(
        default=60.0, gt=0, description="Whole-download deadline for one https reference (connect and each read too)."
    )
    # Fault injection for tests and drills of the QA gate: the sound of every generated master is moved
    # this much later (negative: earlier) on each scene's first ``fault_audio_shift_attempts`` attempts.
    fault_audio_shift_ms: float = Field(
        default=0.0, ge=-2000, le=2000, description="Test hook: shift generated audio (ms)."
    )
    fault_audio_shift_attempts: int = Field(
        default=1, ge=0, description="Test hook: how many attempts per scene get the shift (0: every attempt)."
    )
    # The run lock (store/lease.py): the owner writes its heartbeat every third of the lease. The floor
    # keeps a busy database or a loaded host from costing a live owner its run.
    lease_seconds: float = Field(
        default=300.0,
        ge=5,
        description="A run whose owner has written no heartbeat (every third of this) for this long may be "
        "taken over by another process; at least 5 s.",
    )

    @field_validator("reference_private_networks")
    @classmethod
    def _networks(cls, networks: tuple[str, ...]) -> tuple[str, ...]:
        for network in networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"{network!r} is not a network in CIDR form such as 10.0.0.0/8 ({exc})") from None
        return networks

    def generator_options(self) -> dict[str, object]:
        """Constructor options for the configured backend (model.backends.get_generator)."""
        if self.backend != "ltx2":
            return {}
        return {
            "weights": self.ltx2_path,
            "dtype": self.ltx2_dtype,
            "cpu_offload": self.ltx2_cpu_offload,
            "vae_tiling": self.ltx2_vae_tiling,
            "stg_scale": self.ltx2_stg_scale,
            "stg_blocks": self.ltx2_stg_blocks,
        }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process (tests call ``get_settings.cache_clear()`` after changing env)."""
    return Settings()


def embedded_environment(folder: Path) -> dict[str, str]:
    """The variables that keep a whole run on the embedded defaults under ``folder``: syncreel's database,
    asset store and work dir, and Prefect's own home (a throwaway run for a benchmark or a preview)."""
    return {
        "SYNCREEL_DATABASE_URL": f"sqlite:///{folder}/state.db",
        "SYNCREEL_STORAGE_URL": f"file://{folder}/assets",
        "SYNCREEL_WORK_DIR": str(folder / "work"),
        "PREFECT_HOME": str(folder / "prefect"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
