"""Fusion presets: a flat TOML file of fusion settings (keys = `lutfuse fuse` option dests, e.g. `method`,
`grid`, `detail`, `bit_depth`, `quality`, `align`) plus `name`, the output file-name pattern of a batch.

The valid keys and their types come from the caller (the CLI passes fuse's argparse actions), so an option added
to `fuse` is a preset key at once. Read with the standard library's tomllib, written with tomli-w.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lutfuse.core.errors import LUTFuseError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

NAME_KEY = "name"


class PresetError(LUTFuseError):
    """A preset file that cannot be read or holds an unknown key or a bad value."""


def read_preset(path: str | Path) -> dict[str, Any]:
    """The key -> value table of a preset file; PresetError naming the file when it is missing or not TOML,
    or when it holds tables/arrays (a preset is flat)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise PresetError(f"{path}: preset file not found") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PresetError(f"{path}: not a readable TOML preset ({exc})") from None
    data.pop("frames", None)  # an editor sidecar (core.sidecar) names its own bracket's frames
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            raise PresetError(f"{path}: key '{key}' must be a single value (a preset is a flat table)")
    return data


def write_preset(path: str | Path, values: Mapping[str, Any], *, overwrite: bool = False) -> Path:
    """Write settings as a flat TOML preset (None values are left out: TOML has no null; paths become text),
    through a temp file + rename; OutputError when `path` exists and not `overwrite`."""
    import tomli_w

    from lutfuse.core.imageio import check_writable, commit

    path = Path(path)
    check_writable(path, overwrite=overwrite, replace_hint="use --force to replace it")
    clean = {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items() if v is not None}
    text = "# LUTFuse fusion preset: keys are `lutfuse fuse` options (dashes as underscores)\n" + tomli_w.dumps(clean)
    commit(path, text.encode(), overwrite)
    return path
