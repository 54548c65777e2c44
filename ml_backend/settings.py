"""Backend settings (no heavy imports: the CLI reads them while building its parser)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BackendSettings:
    """How the service runs. ``preannotate`` (off by default, so raters are not biased) pre-fills a similarity
    choice from the model's representations; ``basic_auth`` = (user, password) protects every endpoint but /health."""

    host: str = "127.0.0.1"
    port: int = 9090
    basic_auth: tuple[str, str] | None = None
    preannotate: bool = False
    db_path: str | None = None  # default <run_dir>/backend.sqlite
    threads: int = 8
