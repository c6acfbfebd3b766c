"""Configuration, 12-factor style: every setting comes from a ``SYNCREEL_`` environment variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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
    gpu_deployment: str | None = Field(
        None, description="Prefect deployment that scene generation is dispatched to; unset: in-process."
    )
    x264_preset: str = Field("veryfast", description="libx264 speed/size trade-off for deliverables.")
    lease_seconds: float = Field(
        300.0,
        gt=0,
        description="A run whose owner has not written a heartbeat for this long may be taken over.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once per process (tests call ``get_settings.cache_clear()`` after changing env)."""
    return Settings()
