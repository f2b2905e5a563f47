"""Start-up cost of the command line, whole process, next to the cost of importing torch.

Times (median of --repeat runs, each a fresh process): `python -c "import torch"`,
`cervseg --help`, every `cervseg <cmd> --help`, and `cervseg segment` (built-in model) on
a 512x512x100 phantom CT generated into a temporary folder. For segment it compares the
whole-process wall time with the time the command itself logs ("contoured in X s",
DICOM read to RTSTRUCT written): the difference is start-up (interpreter, imports) and exit.
Targets (issue 11): every --help <= 0.5 s; segment wall <= in-process + torch import + 0.5 s,
i.e. start-up + exit at most 0.5 s over the torch import.
The torch import that segment is held to is timed just before each segment run (the load of
these shared cores drifts). Figures, never assertions: these machines are shared and noisy.

Usage:
    python benchmarks/startup.py                 # 5 runs each
    python benchmarks/startup.py --repeat 3 --skip-segment
    python benchmarks/startup.py --segment-only
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from segment_speed import make_ct  # benchmarks/segment_speed.py: the same 512x512x100 phantom CT

HELP_TARGET_S = 0.5
SEGMENT_SLACK_S = 0.5
LOGGED_TOTAL = re.compile(r"contoured in ([0-9.]+) s")


def cervseg_command() -> list[str]:
    """The installed console script beside this interpreter (what a user runs)."""
    script = Path(sys.executable).with_name("cervseg")
    if script.exists():
        return [str(script)]
    found = shutil.which("cervseg")
    return [found] if found else [sys.executable, "-m", "cervseg"]


def wall(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}")
    return seconds, result


def median_wall(cmd: list[str], repeat: int) -> float:
    return statistics.median(wall(cmd)[0] for _ in range(repeat))


def command_names() -> list[str]:
    from cervseg.cli.main import COMMANDS

    return [entry.split(":")[1].replace("_", "-") for entry in COMMANDS]


def time_segment(cervseg: list[str], repeat: int, threads: int) -> dict[str, float]:
    """Medians over the runs of `cervseg segment`'s whole-process wall, its logged in-process
    time, its start-up + exit (wall - logged), a `python -c "import torch"` timed just before
    each segment run, and start-up + exit minus that torch import (the target's margin).

    Interleaved because these shared cores' load drifts over the minutes a segment run
    takes: a torch import timed minutes earlier would not be the same machine. The margins
    are medians of per-run differences, which noise moves less than differences of medians.
    """
    runs = []
    with tempfile.TemporaryDirectory(prefix="cervseg-startup-") as tmp:
        ct = make_ct(Path(tmp))
        for i in range(repeat):
            torch_s = wall([sys.executable, "-c", "import torch"])[0]
            seconds, result = wall([*cervseg, "segment", "--dicom", str(ct), "--out", f"{tmp}/out{i}",
                                    "--threads", str(threads)])
            match = LOGGED_TOTAL.search(result.stderr)
            if match is None:
                raise SystemExit(f"segment did not log its time:\n{result.stderr}")
            logged = float(match.group(1))
            runs.append({"wall": seconds, "logged": logged, "start_up": seconds - logged, "torch": torch_s,
                         "over": seconds - logged - torch_s})
            print(f"  run {i + 1}: torch import {torch_s:.2f} s, segment wall {seconds:.2f} s, logged {logged:.2f} s, "
                  f"start-up + exit {seconds - logged:.2f} s ({seconds - logged - torch_s:+.2f} s over torch)", flush=True)
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="Runs per command (median reported).")
    parser.add_argument("--threads", type=int, default=2, help="--threads for cervseg segment.")
    parser.add_argument("--skip-segment", action="store_true", help="Time only the imports and --help.")
    parser.add_argument("--segment-only", action="store_true", help="Time only cervseg segment (and torch).")
    args = parser.parse_args()
    cervseg = cervseg_command()
    if args.segment_only:
        return report_segment(cervseg, args.repeat, args.threads)

    torch_s = median_wall([sys.executable, "-c", "import torch"], args.repeat)
    rows = [("python -c 'import torch'", torch_s, None)]
    rows.append(("cervseg --help", median_wall([*cervseg, "--help"], args.repeat), HELP_TARGET_S))
    for name in command_names():
        rows.append((f"cervseg {name} --help", median_wall([*cervseg, name, "--help"], args.repeat), HELP_TARGET_S))

    print(f"whole-process wall time, median of {args.repeat} runs ({' '.join(cervseg)})\n")
    print(f"{'command':<34}{'seconds':>9}{'/ torch import':>16}{'target':>10}")
    for label, seconds, target in rows:
        verdict = "" if target is None else ("ok" if seconds <= target else "MISSED")
        print(f"{label:<34}{seconds:>9.2f}{seconds / torch_s:>16.2f}{verdict:>10}")

    if not args.skip_segment:
        report_segment(cervseg, args.repeat, args.threads)


def report_segment(cervseg: list[str], repeat: int, threads: int) -> None:
    """Print segment's whole-process, logged and start-up + exit times against its target."""
    print(f"\ncervseg segment, built-in model, 512x512x100 phantom CT, --threads {threads}, "
          "each run just after a `python -c 'import torch'`:")
    m = time_segment(cervseg, repeat, threads)
    print(f"medians of {repeat} runs:")
    print(f"  torch import           {m['torch']:7.2f} s")
    print(f"  whole process          {m['wall']:7.2f} s  ({m['wall'] / m['torch']:.2f} x torch import)")
    print(f"  logged by the command  {m['logged']:7.2f} s  (DICOM read to RTSTRUCT and QA file written)")
    print(f"  start-up + exit        {m['start_up']:7.2f} s  ({m['start_up'] / m['torch']:.2f} x torch import)")
    print(f"  target: start-up + exit <= torch import + {SEGMENT_SLACK_S} s; median margin "
          f"{m['over']:+.2f} s: {'ok' if m['over'] <= SEGMENT_SLACK_S else 'MISSED'}")


if __name__ == "__main__":
    main()
