"""Configuration, 12-factor style: every setting comes from a ``SYNCREEL_`` environment variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYNCREEL_", extra="ignore")

    database_url: str = Field(
        "sqlite:///.syncreel/state.db",
        description="SQLAlchemy URL of the run-state database (postgresql+psycopg://... in production).",
    )
    storage_url: str = Field(
        "file://.syncreel/assets",
        description="Where assets live: file://FOLDER or s3://bucket/prefix (AWS env + AWS_ENDPOINT_URL).",
    )
    work_dir: Path = Field(
        Path(".syncreel/work"),
        description="Local scratch space for files being rendered and for downloads from the asset store.",
    )
    backend: str = Field("builtin", description="Generation backend: builtin | ltx2.")
    # The ltx2 backend (model/ltx2.py); read only when backend is ltx2.
    ltx2_path: Path | None = Field(
        None,
        description="Local diffusers-format LTX-2 checkpoint directory (model_index.json + component folders); "
        "never downloaded.",
    )
    ltx2_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="LTX-2 weights' precision; auto: bfloat16 on CUDA, float32 on a CPU."
    )
    ltx2_cpu_offload: bool = Field(
        False, description="Keep LTX-2's models in CPU memory and move each to the GPU only while it runs."
    )
    ltx2_vae_tiling: bool = Field(False, description="Decode LTX-2's video latents in overlapping spatial tiles.")
    ltx2_stg_scale: float = Field(1.0, ge=0, description="LTX-2 spatio-temporal guidance scale; 0 turns it off.")
    ltx2_stg_blocks: tuple[int, ...] = Field(
        (28,), description="Transformer blocks that spatio-temporal guidance perturbs (JSON list, e.g. [28])."
    )
    gpu_deployment: str | None = Field(
        None, description="Prefect deployment that scene generation is dispatched to; unset: in-process."
    )
    x264_preset: str = Field("veryfast", description="libx264 speed/size trade-off for deliverables.")
    lease_seconds: float = Field(
        300.0,
        gt=0,
        description="A run whose owner has not written a heartbeat for this long may be taken over.",
    )

    def generator_options(self) -> dict[str, object]:
        """Constructor options for the configured backend (model.generator.get_generator)."""
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
