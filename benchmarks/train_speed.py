"""Training speed and peak memory of every registered model on CPU.

Prints, per model and width, the training throughput (slices/second, forward + backward
+ Adam step) and the process's peak resident memory, at 256x256 (paper 001's crop) with
batch 4 and the paper-000 output of 6 sigmoid channels. Each configuration runs in its
own Python process so that the peak memory (getrusage ru_maxrss) belongs to it alone.
Figures only, no assertions: the machine is shared, time it on yours.

    python benchmarks/train_speed.py                       # all models, paper + slim width
    python benchmarks/train_speed.py --models unet resau_net --iterations 5 --threads 2
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time

log = logging.getLogger("train_speed")


def measure(name: str, width: int, args: argparse.Namespace) -> dict[str, float]:
    """Run a few training iterations of one model in this process and return its figures."""
    import torch

    from cervseg.models.registry import create_model, parameter_count
    from cervseg.train.losses import create_loss

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(name, args.in_channels, args.out_channels, base_width=width).train()
    loss_fn = create_loss("ce", "multilabel")
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    x = torch.randn(args.batch, args.in_channels, args.size, args.size)
    y = (torch.rand(args.batch, args.out_channels, args.size, args.size) > 0.9).float()
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimiser.step()

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.iterations):
        step()
    elapsed = time.perf_counter() - start
    return {
        "model": name,
        "width": width,
        "parameters": parameter_count(model),
        "seconds_per_iteration": elapsed / args.iterations,
        "slices_per_second": args.batch * args.iterations / elapsed,
        "rss_after_build_mb": rss_model,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,  # Linux: KiB
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", help="default: every registered model")
    parser.add_argument("--widths", nargs="*", default=["paper", "slim"],
                        help="'paper', 'slim' (paper / 4) or integers (default: paper slim)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--out-channels", type=int, default=6)
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "WIDTH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.one:  # child process: one configuration, one JSON line
        print(json.dumps(measure(args.one[0], int(args.one[1]), args)), flush=True)
        return 0

    from cervseg.models.registry import available_models, model_spec

    models = args.models or available_models()
    passthrough = [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in
                   ("size", "batch", "iterations", "warmup", "threads", "in_channels", "out_channels")]
    header = f"{'model':<16}{'width':>6}{'params':>13}{'s/iter':>9}{'slices/s':>10}{'built RSS MB':>14}{'peak RSS MB':>13}"
    log.info("training speed, %dx%d, batch %d, %d threads, %d iterations after %d warm-up",
             args.size, args.size, args.batch, args.threads, args.iterations, args.warmup)
    log.info(header)
    rows = []
    for name in models:
        spec = model_spec(name)
        for w in args.widths:
            if w == "paper":
                width = spec.default_width
            elif w == "slim":
                width = max(spec.min_width, spec.default_width // 4)
            else:
                width = int(w)
            cmd = [sys.executable, __file__, "--one", name, str(width), *passthrough]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                log.error("%s width %d failed: %s", name, width, done.stderr.strip().splitlines()[-1:])
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            log.info(f"{name:<16}{width:>6}{row['parameters']:>13,}{row['seconds_per_iteration']:>9.2f}"
                     f"{row['slices_per_second']:>10.2f}{row['rss_after_build_mb']:>14.0f}{row['peak_rss_mb']:>13.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
