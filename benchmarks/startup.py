"""Start-up cost of the command line, whole process, next to the cost of importing torch.

Times (median of --repeat runs, each a fresh process): `python -c "import torch"`,
`cervseg --help`, every `cervseg <cmd> --help`, and `cervseg segment` (built-in model) on
a 512x512x100 phantom CT generated into a temporary folder. For segment it compares the
whole-process wall time with the time the command itself logs ("contoured in X s",
DICOM read to RTSTRUCT written): the difference is start-up (interpreter, imports) and exit.
Targets (issue 11): every --help <= 0.5 s; segment wall <= in-process + torch import + 0.5 s.
Figures, never assertions: these machines are shared and noisy.

Usage:
    python benchmarks/startup.py                 # 5 runs each
    python benchmarks/startup.py --repeat 3 --skip-segment
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


def time_segment(cervseg: list[str], repeat: int, threads: int) -> tuple[float, float]:
    """Median whole-process wall and median logged in-process time of `cervseg segment`."""
    walls, logged = [], []
    with tempfile.TemporaryDirectory(prefix="cervseg-startup-") as tmp:
        ct = make_ct(Path(tmp))
        for i in range(repeat):
            seconds, result = wall([*cervseg, "segment", "--dicom", str(ct), "--out", f"{tmp}/out{i}",
                                    "--threads", str(threads)])
            match = LOGGED_TOTAL.search(result.stderr)
            if match is None:
                raise SystemExit(f"segment did not log its time:\n{result.stderr}")
            walls.append(seconds)
            logged.append(float(match.group(1)))
    return statistics.median(walls), statistics.median(logged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="Runs per command (median reported).")
    parser.add_argument("--threads", type=int, default=2, help="--threads for cervseg segment.")
    parser.add_argument("--skip-segment", action="store_true", help="Time only the imports and --help.")
    args = parser.parse_args()
    cervseg = cervseg_command()

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

    if args.skip_segment:
        return
    seg_wall, seg_logged = time_segment(cervseg, args.repeat, args.threads)
    start_up = seg_wall - seg_logged
    limit = seg_logged + torch_s + SEGMENT_SLACK_S
    print(f"\ncervseg segment, built-in model, 512x512x100 phantom CT, --threads {args.threads}:")
    print(f"  whole process          {seg_wall:7.2f} s  ({seg_wall / torch_s:.2f} x torch import)")
    print(f"  logged by the command  {seg_logged:7.2f} s  (DICOM read to RTSTRUCT written)")
    print(f"  start-up + exit        {start_up:7.2f} s  ({start_up / torch_s:.2f} x torch import)")
    print(f"  target: wall <= logged + torch import + {SEGMENT_SLACK_S} s = {limit:.2f} s: "
          f"{'ok' if seg_wall <= limit else 'MISSED'}")


if __name__ == "__main__":
    main()
