"""Feed configuration: where data lives, which database, the public base URL, limits.

A :class:`FeedConfig` is immutable and serializable to JSON so several uvicorn worker processes can each
rebuild the same configuration from the environment (:data:`CONFIG_ENV_VAR`); nothing else is shared
between workers but the database and the storage folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nuseal.errors import ConfigError

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_MAX_PACKAGE_SIZE",
    "DEFAULT_PORT",
    "FeedConfig",
]

#: Environment variable through which ``nuseal serve`` hands its configuration to worker processes.
CONFIG_ENV_VAR = "NUSEAL_FEED_CONFIG"
DEFAULT_PORT = 5000
#: nuget.org's upload limit is 250 MB; the embedded default is the same.
DEFAULT_MAX_PACKAGE_SIZE = 250 * 1000 * 1000
#: Longest base URL accepted (it is embedded in every document).
MAX_BASE_URL_LENGTH = 512


@dataclass(frozen=True)
class FeedConfig:
    """Everything a feed process needs.

    Attributes:
        data_dir: root folder; holds ``feed.db`` (SQLite default), ``storage/`` (the documents and packages
            served as static files) and ``staging/`` (uploads in flight).
        base_url: public URL prefix, no trailing slash (``http://127.0.0.1:5000``). Documents embed it.
        database_url: SQLAlchemy URL; ``None`` means ``sqlite:///<data_dir>/feed.db``.
        max_package_size: upload cap in bytes (413 above it).
        download_flush_seconds: how often buffered download counts are written to the database.
    """

    data_dir: Path
    base_url: str
    database_url: str | None = None
    max_package_size: int = DEFAULT_MAX_PACKAGE_SIZE
    download_flush_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")) or len(self.base_url) > MAX_BASE_URL_LENGTH:
            raise ConfigError(
                f"the base URL {self.base_url!r} must be an http(s) URL of at most {MAX_BASE_URL_LENGTH} characters"
            )
        if self.base_url.endswith("/"):
            object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if self.max_package_size <= 0:
            raise ConfigError("the package size cap must be positive")
        object.__setattr__(self, "data_dir", Path(self.data_dir).resolve())

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "storage"

    @property
    def staging_dir(self) -> Path:
        return self.data_dir / "staging"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'feed.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def with_base_url(self, base_url: str) -> FeedConfig:
        return replace(self, base_url=base_url)

    def to_json(self) -> str:
        d = asdict(self)
        d["data_dir"] = str(self.data_dir)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeedConfig:
        """Rebuild a configuration written by :meth:`to_json`.

        Raises:
            ConfigError: not valid JSON or missing fields.
        """
        try:
            d = json.loads(text)
            d["data_dir"] = Path(d["data_dir"])
            return cls(**d)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"invalid feed configuration: {exc}") from exc

    @classmethod
    def from_env(cls) -> FeedConfig:
        """The configuration a ``nuseal serve`` parent process put in :data:`CONFIG_ENV_VAR`.

        Raises:
            ConfigError: the variable is missing or invalid.
        """
        text = os.environ.get(CONFIG_ENV_VAR)
        if not text:
            raise ConfigError(f"{CONFIG_ENV_VAR} is not set; start the feed with `nuseal serve`")
        return cls.from_json(text)
