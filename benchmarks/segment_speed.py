"""End-to-end contouring speed on CPU: DICOM read -> RTSTRUCT written, on a 512x512x100 CT.

Prints wall time, seconds per slice and peak memory for the built-in model and for each
architecture at its published width (untrained weights: speed depends on the
architecture, not on the values of the weights; an untrained network may predict
speckle, which `segment` refuses to write, and then the network pass is timed alone). Each model runs in a fresh process so
that peak memory is its own. Figures, never assertions: these machines are noisy.

Usage:
    python benchmarks/segment_speed.py                  # built-in + every architecture
    python benchmarks/segment_speed.py --models builtin --threads 2 --repeat 3
    python benchmarks/segment_speed.py --models builtin,path/to/checkpoint   # compare with a trained one
    python benchmarks/segment_speed.py --models builtin,OLD --whole-process --repeat 3
        # `cervseg segment` as a user runs it, models alternated, median wall time and peak RSS
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SLICES = 100


def make_ct(folder: Path, seed: int = 11) -> Path:
    """A default-preset phantom cut to exactly 100 slices of 512x512, written as DICOM."""
    from cervseg.dicom.series_write import write_ct_series
    from cervseg.phantom.generator import generate_patient
    from cervseg.phantom.presets import get_preset
    from cervseg.volume import Geometry, SeriesInfo, Volume

    preset = get_preset("default").with_overrides(slice_mm=(3.0,), slice_p=(1.0,))
    volume, _ = generate_patient(seed, preset)
    if volume.geometry.shape[0] < SLICES:
        raise SystemExit(f"phantom seed {seed} has {volume.geometry.shape[0]} slices; need {SLICES}")
    g = volume.geometry
    cut = Geometry((SLICES, *g.shape[1:]), g.spacing, g.origin, g.axes, g.frame_of_reference_uid)
    series = SeriesInfo(patient=volume.series.patient, study=volume.series.study)
    write_ct_series(Volume(np.ascontiguousarray(volume.array[:SLICES]), cut, series), folder / "CT")
    return folder / "CT"


def make_checkpoint(name: str, folder: Path, structures: list[str]) -> Path:
    """An untrained checkpoint of ``name`` at its published width, with the built-in preprocessing."""
    import torch

    from cervseg.infer.builtin import builtin_model_path
    from cervseg.models.checkpoint import read_metadata, save_checkpoint
    from cervseg.models.registry import create_model

    try:
        preprocessing = read_metadata(builtin_model_path()).preprocess
    except Exception:  # no built-in model installed: the paper-001 style default
        preprocessing = {"intensity": "window", "window_width": 300, "window_level": 50,
                         "crop_size": 256, "context_slices": 0}
    in_ch = 2 * int(preprocessing.get("context_slices", 0)) + 1
    torch.manual_seed(0)
    model = create_model(name, in_ch, len(structures))
    config = {"in_channels": in_ch, "out_channels": len(structures)}
    out = folder / f"ckpt-{name}"
    save_checkpoint(out, model, model_name=name, model_config=config, structures=structures,
                    output_mode="multilabel", preprocess=preprocessing,
                    training_summary={"description": "untrained, for speed only"})
    return out


def measure_one(ct: Path, model: str, threads: int, repeat: int) -> dict:
    """Run the segment job ``repeat`` times in this process; the best wall time counts."""
    import torch

    from cervseg.dicom.series import read_ct_series
    from cervseg.errors import StructureError
    from cervseg.infer.builtin import builtin_model_path
    from cervseg.infer.predictor import Predictor
    from cervseg.infer.segment import segment_series
    from cervseg.structures import load_template

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        if model == "builtin":
            path = builtin_model_path()
        elif Path(model).is_dir():  # a trained checkpoint folder, e.g. the previous built-in model
            path = Path(model)
        else:
            path = make_checkpoint(model, Path(tmp), list(load_template("cervix").structures))
        times, predict = [], []
        for i in range(repeat):
            t = time.perf_counter()
            predictor = Predictor.from_checkpoint(path, threads=threads)
            try:
                result = segment_series(ct, Path(tmp) / f"out{i}", predictor=predictor)
            except StructureError as exc:
                # untrained weights may predict speckle, which segment refuses to write:
                # report the time to the refusal and the network pass on its own
                refused = time.perf_counter() - t
                volume = read_ct_series(ct)
                t = time.perf_counter()
                predictor.predict(volume, show_progress=False)
                return {"model": model, "params": sum(p.numel() for p in predictor.model.parameters()),
                        "seconds": round(refused, 2), "s_per_slice": round(refused / SLICES, 4),
                        "predict_s": round(time.perf_counter() - t, 2), "refused": str(exc),
                        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)}
            times.append(time.perf_counter() - t)
            predict.append(result.timings["predict"])
        params = sum(p.numel() for p in predictor.model.parameters())
    best = min(times)
    return {"model": model, "params": params, "seconds": round(best, 2), "s_per_slice": round(best / SLICES, 4),
            "predict_s": round(min(predict), 2),
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)}


def whole_process(ct: Path, models: list[str], repeat: int, threads: int) -> None:
    """``cervseg segment`` in a fresh process per run, the models alternated so drift hits all;
    prints each model's runs and their medians (wall time, the child's peak RSS)."""
    import os
    import shutil
    import statistics

    cli = Path(sys.executable).with_name("cervseg")
    runs: dict[str, list[tuple[float, float]]] = {m: [] for m in models}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            for model in models:
                out = Path(tmp) / "out"
                shutil.rmtree(out, ignore_errors=True)
                cmd = [str(cli), "segment", "--dicom", str(ct), "--out", str(out), "--threads", str(threads)]
                if model != "builtin":
                    cmd += ["--model", model]
                t = time.perf_counter()
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                _, status, usage = os.wait4(proc.pid, 0)
                seconds = time.perf_counter() - t
                if os.waitstatus_to_exitcode(status) != 0:
                    print(f"{model:<16} failed (exit {os.waitstatus_to_exitcode(status)})")
                    return
                runs[model].append((seconds, usage.ru_maxrss / 1024.0))
    width = max(7 * repeat + 2, 14)
    print(f"{'model':<16}{'runs s':>{width}}{'median s':>10}{'peak MB runs':>{width}}{'median MB':>11}")
    for model, values in runs.items():
        secs, mbs = [v[0] for v in values], [v[1] for v in values]
        print(f"{model:<16}{', '.join(f'{x:.2f}' for x in secs):>{width}}{statistics.median(secs):>10.2f}"
              f"{', '.join(f'{x:.0f}' for x in mbs):>{width}}{statistics.median(mbs):>11.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="builtin,unet,cab_se_unet,resau_net,attention_unet,unet_pp")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--whole-process", action="store_true",
                        help="time `cervseg segment` as a user runs it (start-up and exit included)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--ct", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.one:
        print(json.dumps(measure_one(args.ct, args.one, args.threads, args.repeat)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        ct = make_ct(Path(tmp))
        if args.whole_process:
            print(f"CT: {SLICES} slices of 512x512, {args.threads} threads, `cervseg segment` {args.repeat} times each")
            whole_process(ct, args.models.split(","), args.repeat, args.threads)
            return 0
        print(f"CT: {SLICES} slices of 512x512, {args.threads} threads, best of {args.repeat} runs")
        print(f"{'model':<16}{'params':>12}{'total s':>9}{'s/slice':>9}{'model s':>9}{'peak MB':>9}")
        for model in args.models.split(","):
            proc = subprocess.run(
                [sys.executable, __file__, "--one", model, "--ct", str(ct), "--threads", str(args.threads),
                 "--repeat", str(args.repeat)], capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{model:<16} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else '?'}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{r['model']:<16}{r['params']:>12,}{r['seconds']:>9.2f}{r['s_per_slice']:>9.3f}"
                  f"{r['predict_s']:>9.2f}{r['peak_mb']:>9}")
            if "refused" in r:
                print(f"{'':<16}refused to write (model s = network pass alone): {r['refused']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
