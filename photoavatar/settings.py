"""Configuration from the environment, or from a TOML settings file; never from code.

The file is `$PHOTOAVATAR_SETTINGS`, else `~/.config/photoavatar/settings.toml`. Keys are the lower-case
names of the environment variables (`elevenlabs_api_key = "..."`); the environment wins over the file.
"""

from __future__ import annotations

import os
import tomllib
from functools import cache
from pathlib import Path


def settings_path() -> Path:
    explicit = os.environ.get("PHOTOAVATAR_SETTINGS")
    return Path(explicit) if explicit else Path.home() / ".config" / "photoavatar" / "settings.toml"


@cache
def _file_settings(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            return {str(k).lower(): v for k, v in tomllib.load(handle).items()}
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"cannot read the settings file {path}: {error}; fix or remove it") from error


def setting(name: str, default: str | None = None) -> str | None:
    """The value of setting NAME (e.g. "ELEVENLABS_API_KEY"): environment first, then the settings file."""
    value = os.environ.get(name.upper())
    if value not in (None, ""):
        return value
    found = _file_settings(settings_path()).get(name.lower())
    return str(found) if found not in (None, "") else default
