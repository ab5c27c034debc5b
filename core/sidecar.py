"""Fusion settings as TOML, one module: the editor's settings files and per-bracket sidecar `.lutfuse.toml` beside
the frames, and batch presets (`read_preset` / `write_preset`).

The keys are the long options of `lutfuse fuse` (`grid`, `detail`, `align`) and the colour adjustments of
`core.adjust.Look` (`exposure` … `tint`), so one file serves the editor, a preset and the batch command.
A batch preset may hold any of fuse's option dests (`method`, `bit_depth`, `quality`, ...) plus `name`, the
output file-name pattern; the batch command checks those against fuse's options (the editor's keys are a subset). The
sidecar also lists the frames it belongs to (`frames`), so a folder holding several brackets does not hand one
bracket's settings to another, and the editor's bracket control (`reference_frame`, a file name, and
`excluded_frames`, file names). Unknown keys are ignored (a newer version's file still opens); wrong types or
out-of-range values are a `SettingsError` naming the file and the key. TOML 1.0 (https://toml.io/en/v1.0.0).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lutfuse.core.adjust import FIELDS
from lutfuse.core.errors import LUTFuseError
from lutfuse.core.grid import MAX_GRID, MIN_GRID
from lutfuse.core.imageio import commit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SIDECAR_NAME = ".lutfuse.toml"
LOOK_KEYS = FIELDS   # core.adjust.Look's fields, the sliders' names
NAME_KEY = "name"    # a batch preset's output file-name pattern
# key -> (kind, lowest, highest); ranges as the CLI and core.adjust.Look accept them
RANGES: dict[str, tuple[type, float, float]] = {
    "grid": (int, MIN_GRID, MAX_GRID),
    "detail": (float, 0.0, 4.0),
    "exposure": (float, -5.0, 5.0),
    **{k: (float, -100.0, 100.0) for k in LOOK_KEYS if k != "exposure"},
}
BOOL_KEYS = ("align",)
FRAME_KEYS = ("reference_frame", "excluded_frames")   # sidecar only: the editor's reference and left-out frames


class SettingsError(LUTFuseError):
    """A settings file that cannot be read or holds a wrong value."""


class PresetError(SettingsError):
    """A batch preset that cannot be read or holds an unknown key or a bad value."""


def check_settings(values: Mapping[str, object], source: str = "settings") -> dict[str, object]:
    """The known keys of `values`, type-checked and range-checked (ints and floats; `align` a bool).
    Raises SettingsError naming `source` and the key."""
    out: dict[str, object] = {}
    for key, value in values.items():
        if key == "align" and isinstance(value, str):  # a batch preset names the registration mode
            from lutfuse.core.registration import MODES

            if value not in MODES:
                raise SettingsError(f"{source}: {key} must be one of {', '.join(MODES)}, not {value!r}")
            out[key] = value != "off"
        elif key in FRAME_KEYS:   # the editor's bracket control: file names of the bracket's frames
            names = [value] if key == "reference_frame" else value
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                raise SettingsError(f"{source}: {key} must be "
                                    f"{'a file name' if key == 'reference_frame' else 'a list of file names'}, "
                                    f"not {value!r}")
            out[key] = value
        elif key in BOOL_KEYS:
            if not isinstance(value, bool):
                raise SettingsError(f"{source}: {key} must be true or false, not {value!r}")
            out[key] = value
        elif key in RANGES:
            kind, low, high = RANGES[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SettingsError(f"{source}: {key} must be a number, not {value!r}")
            if kind is int and int(value) != value:
                raise SettingsError(f"{source}: {key} must be a whole number, not {value!r}")
            if not low <= value <= high:
                raise SettingsError(f"{source}: {key} = {value} is outside {low:g}..{high:g}")
            out[key] = kind(value)
    return out


def read_settings(path: str | Path) -> dict[str, object]:
    """Read a preset or sidecar: the known keys, checked (see check_settings), plus `frames` (list of file
    names) when present. Raises SettingsError (missing, unreadable or invalid file)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    out = check_settings(data, str(path))
    frames = data.get("frames")
    if isinstance(frames, list) and all(isinstance(f, str) for f in frames):
        out["frames"] = frames
    return out


def _toml_value(value: object) -> str:
    """One TOML value (bool, int, float, string or list of strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(round(value, 6))
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def write_settings(path: str | Path, values: Mapping[str, object], *, frames: Sequence[str] = (),
                   overwrite: bool = False) -> Path:
    """Write the known keys of `values` (checked) as TOML to `path` (temp file + rename; an existing file only
    with overwrite=True), with `frames` when given. Returns the path."""
    path = Path(path)
    checked = check_settings(values, str(path))
    lines = ["# LUTFuse settings: the keys are lutfuse fuse's options and the colour adjustments"]
    if frames:
        lines.append(f"frames = {_toml_value(list(frames))}")
    lines += [f"{key} = {_toml_value(value)}" for key, value in checked.items()]
    commit(path, ("\n".join(lines) + "\n").encode("utf-8"), overwrite)
    return path


def sidecar_path(frames: Sequence[str | Path]) -> Path:
    """The sidecar of a bracket: `.lutfuse.toml` in the folder of its first frame."""
    return Path(frames[0]).parent / SIDECAR_NAME


def read_sidecar(frames: Sequence[str | Path]) -> dict[str, object] | None:
    """The settings stored beside these frames, or None when there is no sidecar or it belongs to other frames.
    Raises SettingsError for a sidecar that exists but is broken."""
    path = sidecar_path(frames)
    if not path.is_file():
        return None
    values = read_settings(path)
    names = values.pop("frames", None)
    if isinstance(names, list) and sorted(names) != sorted(Path(f).name for f in frames):
        return None
    return values


def write_sidecar(frames: Sequence[str | Path], values: Mapping[str, object]) -> Path:
    """Store `values` beside `frames` (replacing the previous sidecar of the folder). Returns its path;
    raises OutputError when the folder is not writable."""
    return write_settings(sidecar_path(frames), values, frames=[Path(f).name for f in frames], overwrite=True)


def read_preset(path: str | Path) -> dict[str, Any]:
    """The key -> value table of a batch preset file (any of fuse's option dests, unchecked: the batch command
    checks them against fuse's options); PresetError naming the file when it is missing or not TOML, or when it
    holds tables/arrays (a preset is flat). An editor sidecar's `frames` list and its bracket control
    (FRAME_KEYS: that bracket's reference and left-out files) are dropped: they name one bracket's files."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise PresetError(f"{path}: preset file not found") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PresetError(f"{path}: not a readable TOML preset ({exc})") from None
    for key in ("frames", *FRAME_KEYS):  # an editor sidecar names its own bracket's frames
        data.pop(key, None)
    for key, value in data.items():
        if isinstance(value, (dict, list)):
            raise PresetError(f"{path}: key '{key}' must be a single value (a preset is a flat table)")
    return data


def write_preset(path: str | Path, values: Mapping[str, Any], *, overwrite: bool = False) -> Path:
    """Write settings as a flat TOML preset (None values are left out: TOML has no null; paths become text),
    through a temp file + rename; OutputError when `path` exists and not `overwrite`."""
    import tomli_w

    from lutfuse.core.imageio import check_writable

    path = Path(path)
    check_writable(path, overwrite=overwrite, replace_hint="use --force to replace it")
    clean = {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items() if v is not None}
    text = "# LUTFuse fusion preset: keys are `lutfuse fuse` options (dashes as underscores)\n" + tomli_w.dumps(clean)
    commit(path, text.encode(), overwrite)
    return path
