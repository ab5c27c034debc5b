"""`lutfuse batch`: group a shoot into brackets and fuse them all, unattended, with one preset.

The fusion options are `lutfuse fuse`'s own (copied from its parser, `fuse.setting_actions`) and each bracket goes
through `core.pipeline.fuse_files`, so a batch output is the file `fuse` writes for the same frames and settings.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import string
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lutfuse.core.commands import fuse as fusecmd
from lutfuse.core.commands.common import HelpFormatter, progress_bar
from lutfuse.core.errors import LUTFuseError, OutputError, shown_path

DEFAULT_NAME = "{first}_{method}.jpg"
DEFAULT_FOLDER_NAME = "{folder}_{method}.jpg"
NAME_FIELDS = ("first", "last", "folder", "index", "method", "frames")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `batch` subcommand."""
    p = sub.add_parser(
        "batch",
        help="group a folder of frames into brackets and fuse them all",
        description="Group frames into brackets (by EXIF capture time and exposure pattern, N at a time, or one "
                    "subfolder each) and fuse every bracket as `lutfuse fuse` would, with the same options. "
                    "A bad bracket is reported and the batch goes on; the exit status is 1 if any failed.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="frame files and/or folders of frames")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT_DIR", help="folder for the results")
    p.add_argument("--force", action="store_true", help="replace results that exist")
    p.add_argument("--preset", type=Path, default=None,
                   help="TOML file of fusion settings (keys = this command's fusion options, plus `name`); "
                        "options given here override it")
    p.add_argument("--save-preset", type=Path, default=None, metavar="FILE",
                   help="write the effective fusion settings (and --name) as a TOML preset")
    p.add_argument("--name", default=None,
                   help=f"output file-name pattern; fields {{{'}, {'.join(NAME_FIELDS)}}}; the extension picks "
                        f"the format (default {DEFAULT_NAME}, with --group folder {DEFAULT_FOLDER_NAME})")
    p.add_argument("--group", default="auto", metavar="auto|N|folder",
                   help="auto: by capture time and exposure pattern; N: N frames at a time (capture order); "
                        "folder: one subfolder per bracket")
    p.add_argument("--workers", type=int, default=1, help="processes fusing in parallel (1 = in this process)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per worker (default: cores / workers; 1 is faster on a busy machine)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local process pool, or Ray tasks (pip install 'lutfuse[cluster]')")
    p.add_argument("--address", default=None,
                   help="Ray cluster address, e.g. ray://head:10001 (default: start a local Ray instance)")
    p.add_argument("--resume", action="store_true", help="skip brackets whose output already exists")
    p.add_argument("--dry-run", action="store_true", help="print the groups with their EVs and exit")
    p.add_argument("--summary", type=Path, default=None, metavar="FILE",
                   help="write a per-bracket summary, .csv or .json")
    p.add_argument("--timelapse", action="store_true",
                   help="brackets are a time-lapse: smooth the global tone over neighbours (method lut)")
    p.add_argument("--preview-video", type=Path, default=None, metavar="OUT.mp4",
                   help="with --timelapse: also write the fused sequence as an H.264 video (needs imageio-ffmpeg)")
    group = p.add_argument_group("fusion settings (as lutfuse fuse)")
    for actions in fusecmd.setting_groups():
        # fuse's own Actions (flags, type, choices), mutually exclusive where fuse's are; a default is applied in
        # run(), under the preset, so that only options given on the command line override the preset
        target = group if len(actions) == 1 else group.add_mutually_exclusive_group()
        for action in actions:
            if action.help and action.default not in (None, False):
                action.help = f"{action.help} (default: {action.default})"
            action.default = argparse.SUPPRESS
            target._add_action(action)
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------------ presets

def _setting_actions(parser_actions: list[argparse.Action] | None = None) -> dict[str, argparse.Action]:
    """dest -> the action that sets it; where two options share a dest (--align MODE and --no-align), the one
    that takes a value decides what a preset may hold."""
    actions: dict[str, argparse.Action] = {}
    for action in parser_actions or fusecmd.setting_actions():
        if action.dest not in actions or actions[action.dest].nargs == 0:
            actions[action.dest] = action
    return actions


def preset_values(path: Path) -> dict[str, Any]:
    """A preset file's values checked against fuse's options: PresetError naming the key and the file for an
    unknown key or a value of the wrong type / not among the choices."""
    from lutfuse.core.sidecar import NAME_KEY, PresetError, read_preset

    actions = _setting_actions()
    values = read_preset(path)
    if isinstance(values.get("align"), bool):  # the editor's settings files (core.sidecar) say align = true/false
        values["align"] = "auto" if values["align"] else "off"
    if "no_align" in values:  # fuse's --no-align, spelt as a key like every other option
        flag = values.pop("no_align")
        if not isinstance(flag, bool):
            raise PresetError(f"{path}: key 'no_align' must be true or false, got {flag!r}")
        if flag and values.get("align", "off") != "off":
            raise PresetError(f"{path}: keys 'no_align' = true and 'align' = {values['align']!r} disagree")
        if flag:
            values["align"] = "off"
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == NAME_KEY:
            if not isinstance(value, str):
                raise PresetError(f"{path}: key '{key}' must be a text pattern like \"{DEFAULT_NAME}\"")
            out[key] = value
            continue
        action = actions.get(key)
        if action is None:
            known = ", ".join(sorted([*actions, NAME_KEY, "no_align"]))
            raise PresetError(f"{path}: unknown preset key '{key}' (known keys: {known})")
        if action.nargs == 0:  # store_true / store_false flags
            if not isinstance(value, bool):
                raise PresetError(f"{path}: key '{key}' must be true or false, got {value!r}")
        else:
            if isinstance(value, bool):
                raise PresetError(f"{path}: key '{key}' must be a value for {action.option_strings[-1]}, got {value}")
            if action.type is not None:
                try:
                    value = action.type(value) if not isinstance(value, str) or action.type is not str else value  # type: ignore[operator]
                    if isinstance(value, float) and action.type is int and not value.is_integer():
                        raise ValueError
                except (TypeError, ValueError):
                    raise PresetError(f"{path}: key '{key}' has a bad value {value!r}") from None
            if action.choices is not None and value not in action.choices:
                choices = ", ".join(map(str, action.choices))
                raise PresetError(f"{path}: key '{key}' = {value!r} is not one of {choices}")
        out[key] = value
    _check_preset_values(path, out)
    return out


def _check_preset_values(path: Path, values: dict[str, Any]) -> None:
    """PresetError naming the key and the file for a value fuse's own checks refuse (grid range, detail, quality,
    look sliders, ...): each key is checked alone over fuse's defaults (core.pipeline.check_settings)."""
    from lutfuse.core.pipeline import FuseSettings, check_settings
    from lutfuse.core.sidecar import NAME_KEY, PresetError

    defaults = {a.dest: a.default for a in fusecmd.setting_actions()}
    for key, value in values.items():
        if key == NAME_KEY:
            continue
        try:
            # a .tif output accepts every bit depth, so only the value itself can fail here
            check_settings(FuseSettings({**defaults, key: value}), Path("preset-check.tif"))
        except LUTFuseError as exc:
            raise PresetError(f"{path}: key '{key}' = {value!r}: {exc}") from None


def apply_preset(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the fusion settings not given on the command line (absent from `args`) from the preset, else from
    fuse's defaults; the preset's `name` applies unless --name was given."""
    values = preset_values(args.preset) if getattr(args, "preset", None) is not None else {}
    for action in fusecmd.setting_actions():
        if not hasattr(args, action.dest):
            setattr(args, action.dest, values.get(action.dest, action.default))
    if getattr(args, "name", None) is None and "name" in values:
        args.name = values["name"]
    return args


# ------------------------------------------------------------------------------------------------ naming

def check_pattern(pattern: str) -> str:
    """The pattern if its fields are known and its extension is an image type, else OutputError."""
    from lutfuse.core.imageio import FORMATS

    for _, field, _, _ in string.Formatter().parse(pattern):
        if field is not None and field not in NAME_FIELDS:
            raise OutputError(f"name pattern '{pattern}': unknown field {{{field}}} "
                              f"(use {', '.join('{' + f + '}' for f in NAME_FIELDS)})")
    if "/" in pattern or "\\" in pattern:
        raise OutputError(f"name pattern '{pattern}': must be a file name, not a path")
    suffix = Path(pattern).suffix.lower()
    if suffix not in FORMATS:
        raise OutputError(f"name pattern '{pattern}': unsupported output type '{suffix or '(no extension)'}' "
                          f"(use {', '.join(sorted(FORMATS))})")
    return pattern


def output_name(pattern: str, group, index: int, method: str) -> str:
    """The file name of a group's result."""
    return pattern.format(first=group.paths[0].stem, last=group.paths[-1].stem, folder=group.folder,
                          index=index, method=method, frames=len(group.paths))


# ------------------------------------------------------------------------------------------------ run

def run(args: argparse.Namespace) -> int:
    """Plan, (dry-)run and summarise a batch; returns 1 when any bracket failed."""
    from lutfuse.core.batch import Job, peak_rss_mb
    from lutfuse.core.grouping import plan_groups
    from lutfuse.core.pipeline import check_settings

    args = apply_preset(args)
    settings = fusecmd.settings_from(args)
    folder_mode = args.group == "folder"
    pattern = check_pattern(args.name or (DEFAULT_FOLDER_NAME if folder_mode else DEFAULT_NAME))
    if args.save_preset is not None:
        from lutfuse.core.sidecar import write_preset

        write_preset(args.save_preset, {**settings.values, "name": pattern}, overwrite=args.force)
        tqdm.write(f"wrote preset {args.save_preset}")
    if args.workers < 1:
        raise LUTFuseError(f"--workers {args.workers}: must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise LUTFuseError(f"--threads {args.threads}: must be at least 1")
    if args.timelapse and settings.method != "lut":
        raise LUTFuseError(f"--timelapse smooths the learned LUT's tone: use --method lut, not {settings.method}")
    if args.preview_video is not None and not args.timelapse:
        raise LUTFuseError("--preview-video needs --timelapse (a video of a sequence)")
    if args.summary is not None and args.summary.suffix.lower() not in (".csv", ".json"):
        raise OutputError(f"{args.summary}: the summary is written as .csv or .json")
    replace = args.force or args.resume  # a resumed batch updates its own summary
    # a summary inside OUT_DIR is checked once batch has made that folder (below, still before any fusing)
    summary_in_output = (args.summary is not None and not args.output.exists()
                         and args.summary.parent.resolve() == args.output.resolve())
    if args.summary is not None and not args.dry_run and not summary_in_output:
        _check_summary(args.summary, replace)
    if args.preview_video is not None and args.preview_video.suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise OutputError(f"{args.preview_video}: the preview video is written as .mp4, .mov or .mkv")

    if not args.dry_run and args.output.is_dir():
        from lutfuse.core.imageio import check_output_folder

        # a read-only or full OUT_DIR fails here, once, before grouping decodes frames, not in every bracket
        check_output_folder(args.output)
    plan = plan_groups(args.inputs, args.group)
    if args.timelapse:
        plan.groups.sort(key=lambda g: (g.frames[0].time is None, g.frames[0].time or 0.0))
    jobs = [Job(i, g.paths, args.output / output_name(pattern, g, i, settings.method))
            for i, g in enumerate(plan.groups, 1)]
    names = [j.output.name for j in jobs]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise OutputError(f"name pattern '{pattern}' gives {names.count(clash[0])} brackets the same file name "
                          f"{clash[0]}; add {{index}} or {{folder}} to --name")

    if args.dry_run:
        _print_plan(plan, jobs)
        return 0
    if jobs:
        check_settings(settings, jobs[0].output)
    if not args.output.is_dir():
        if args.output.exists():
            raise OutputError(f"{args.output}: is not a folder")
        try:
            args.output.mkdir(parents=True)
        except OSError as exc:
            raise OutputError(f"{shown_path(args.output)}: cannot create the folder ({exc.strerror or exc})") from None
    if summary_in_output:
        try:
            _check_summary(args.summary, replace)
        except LUTFuseError:
            if not any(args.output.iterdir()):
                args.output.rmdir()  # nothing left behind on failure
            raise
    existing = [j for j in jobs if j.output.exists()]
    if existing and not (args.resume or args.force):
        raise OutputError(f"{existing[0].output}: already exists ({len(existing)} of {len(jobs)} results do); "
                          "use --resume to skip finished brackets or --force to replace them")
    for path, reason in plan.leftovers:
        tqdm.write(f"not in any bracket: {path} ({reason})")

    outcomes = _execute(args, jobs, settings)
    rows = [_row(o, settings, args.timelapse) for o in sorted(outcomes, key=lambda o: o.job.index)]
    for o in sorted(outcomes, key=lambda o: o.job.index):
        for note in o.result.notes if o.result is not None else []:
            tqdm.write(f"bracket {o.job.index}: note: {note}")
    failed = [r for r in rows if r["status"] == "failed"]
    for r in failed:
        tqdm.write(f"bracket {r['bracket']} failed ({r['frames']}): {r['error']}")
    if args.summary is not None:
        _write_summary(args.summary, rows, plan.leftovers, overwrite=replace)
    done = sum(r["status"] == "ok" for r in rows)
    skipped = sum(r["status"] == "skipped" for r in rows)
    own, children = peak_rss_mb()
    tqdm.write(f"{done} fused, {skipped} skipped (--resume), {len(failed)} failed, {len(plan.leftovers)} frame(s) "
               f"in no bracket; peak memory {own:.0f} MB" + (f", workers {children:.0f} MB" if children else ""))
    return 1 if failed else 0


def _check_summary(path: Path, replace: bool) -> None:
    """Fail before any work when the --summary file cannot be written."""
    from lutfuse.core.imageio import check_writable

    check_writable(path, overwrite=replace, replace_hint="use --force (or --resume) to replace it")


def _execute(args: argparse.Namespace, jobs: list, settings) -> list:
    """Run the jobs (two passes for a time-lapse) with a progress bar -> Outcomes."""
    from lutfuse.core.batch import Outcome, fuse_job

    runner = _runner(args)
    todo = jobs
    outcomes: list[Outcome] = []
    if args.timelapse:
        todo, failed = _timelapse_pass(args, jobs, settings, runner)
        outcomes += failed
    skip = {j.index for j in todo if args.resume and not args.force and j.output.exists()}
    pending = [j for j in todo if j.index not in skip]
    outcomes += [Outcome(j, "skipped") for j in todo if j.index in skip]
    with progress_bar(len(pending), "fusing", unit="bracket") as bar:
        for outcome in runner(pending, settings, overwrite=args.force, task=fuse_job):
            outcomes.append(outcome)
            for text in outcome.warnings:  # caught in the job (a worker's own stderr would lose them)
                tqdm.write(f"lutfuse batch: warning: {text}", file=sys.stderr)
            bar.update(1)
    if args.timelapse:
        _report_flicker(args, outcomes, jobs)
    return outcomes


def _runner(args: argparse.Namespace):
    """The job runner: the local pool, or Ray tasks."""
    from lutfuse.core.batch import run_local

    if args.engine == "ray":
        from lutfuse.core.cluster import RayRunner

        return RayRunner(args.address)
    return lambda jobs, settings, *, overwrite, task: run_local(jobs, settings, workers=args.workers,
                                                                  overwrite=overwrite, task=task,
                                                                  threads=args.threads)


def _timelapse_pass(args, jobs, settings, runner):
    """Pass 1: measure every bracket; set each job's smoothed latent and target -> (jobs to fuse, failures)."""
    import numpy as np

    from lutfuse.core.timelapse import deflicker, measure_job

    measured, failed = [], []
    with progress_bar(len(jobs), "measuring tone", unit="bracket") as bar:
        for outcome in runner(jobs, settings, overwrite=args.force, task=measure_job):
            (measured if outcome.status == "ok" else failed).append(outcome)
            bar.update(1)
    measured.sort(key=lambda o: o.job.index)
    if not measured:
        return [], failed
    latents = np.stack([o.extra["latent"].reshape(-1) for o in measured])
    raw = np.array([o.extra["log_luminance"] for o in measured])
    smooth_latents, targets, cuts = deflicker(latents, raw)
    shape = measured[0].extra["latent"].shape
    for o, z, m in zip(measured, smooth_latents, targets):
        o.job.latent = z.reshape(shape)
        o.job.target_luminance = float(m)
        o.job.raw_luminance = float(o.extra["log_luminance"])
    if cuts:
        tqdm.write("real changes kept at bracket(s) " + ", ".join(str(measured[c].job.index) for c in cuts))
    return [o.job for o in measured], failed


def _report_flicker(args, outcomes, jobs) -> None:
    """Print the flicker of the per-bracket tone before and after smoothing; write the preview video."""
    from lutfuse.core.timelapse import flicker

    ok = sorted((o for o in outcomes if o.status == "ok"), key=lambda o: o.job.index)
    if len(ok) >= 3:
        before = flicker([o.job.raw_luminance for o in ok])
        after = flicker([o.result.log_luminance for o in ok])
        tqdm.write(f"flicker (median frame-to-frame change of log2 luminance after the slow trend): "
                   f"{before:.4f} stops per-bracket tone -> {after:.4f} stops smoothed")
    if args.preview_video is not None:
        from lutfuse.core.video import write_preview

        frames = [j.output for j in sorted(jobs, key=lambda j: j.index) if j.output.exists()]
        write_preview(args.preview_video, frames, overwrite=args.force)
        tqdm.write(f"wrote {args.preview_video} ({len(frames)} frames)")


def _row(outcome, settings, timelapse: bool = False) -> dict[str, Any]:
    """One summary row; a time-lapse adds the mean log2 luminance with the bracket's own tone (tone_raw) and
    as written (tone)."""
    job, result = outcome.job, outcome.result
    evs = result.evs if result is not None else None
    return {
        "bracket": job.index,
        "status": outcome.status,
        "frames": ";".join(str(p) for p in (result.frames if result is not None else job.frames)),
        "evs": ";".join(f"{e:+.2f}" for e in evs) if evs is not None else "",
        "method": settings.method,
        "settings": json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in settings.values.items()},
                               sort_keys=True),
        "seconds": round(outcome.seconds, 3),
        "output": str(job.output),
        "error": outcome.error or "",
    } | ({"tone_raw": job.raw_luminance, "tone": result.log_luminance if result is not None else None}
         if timelapse else {})


def _write_summary(path: Path, rows: list[dict], leftovers, *, overwrite: bool) -> None:
    """The summary as CSV (one row per bracket, then one per leftover frame) or JSON."""
    from lutfuse.core.imageio import commit

    left = [{"frame": str(p), "reason": r} for p, r in leftovers]
    if path.suffix.lower() == ".json":
        text = json.dumps({"brackets": rows, "not_in_any_bracket": left}, indent=2)
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["bracket"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        for item in left:
            writer.writerow({"bracket": "", "status": "not in any bracket", "frames": item["frame"],
                             "error": item["reason"]} if rows else {"bracket": ""})
        text = buf.getvalue()
    commit(path, text.encode(), overwrite)


def _print_plan(plan, jobs) -> None:
    """--dry-run: each group with its frames, EVs and output; then the leftovers."""
    from lutfuse.core.bracket import _TIE_EV  # the loader's rule: closer EXIF exposures are one (it then measures)

    for group, job in zip(plan.groups, jobs):
        evs: list[float] | None
        sources = {s.ev_source for s in group.frames}
        if sources == {"exif"} and (evs := group.frame_evs()) is not None and all(
                b - a >= _TIE_EV for a, b in zip(sorted(evs), sorted(evs)[1:])):
            source = "exif"  # what the loader uses too (its check against the pixels is left to the run)
        else:
            try:  # the loader's own estimate, so that these are the numbers `lutfuse fuse` prints
                evs, source = group.loaded_evs()
            except LUTFuseError:
                evs, source = None, "/".join(sorted(sources))
        ev_text = ", ".join(f"{e:+.1f}" for e in sorted(evs)) if evs is not None else "unknown"
        print(f"bracket {job.index}: {len(group.frames)} frames, EV {ev_text} ({source}) -> {job.output}")
        for k, s in enumerate(group.frames):  # shooting order
            ev = f"{evs[k]:+5.1f} EV" if evs is not None else "    ? EV"
            print(f"    {ev}  {s.path}")
    for path, reason in plan.leftovers:
        print(f"not in any bracket: {path} ({reason})")
    print(f"{len(plan.groups)} bracket(s), {sum(len(g.frames) for g in plan.groups)} frames grouped, "
          f"{len(plan.leftovers)} frame(s) in no bracket")
