"""Model-pass speed of one network on CPU under each inference option, to choose by measurement.

The end-to-end figure (benchmarks/segment_speed.py) is dominated by the network pass, so
the options the issue names are measured here in isolation, on the same input the
predictor feeds (batches of 2.5D 256x256 crops): PyTorch eager (inference mode), eager
with channels-last memory, TorchScript (trace + freeze), and ONNX Runtime when it is
installed. Every option is checked to give the same output as eager before it is timed.
Figures, never assertions: these machines are noisy.

Usage:
    python benchmarks/inference_backends.py                       # the built-in model
    python benchmarks/inference_backends.py --widths 8,12,16 --threads 2 --batch 8
"""

from __future__ import annotations

import argparse
import io
import logging
import time
from typing import Callable

import numpy as np
import torch

log = logging.getLogger("inference_backends")


def build(width: int | None) -> torch.nn.Module:
    """The built-in model, or (``width`` given) the same architecture at that width, untrained."""
    from cervseg.infer.builtin import builtin_model_path
    from cervseg.models.checkpoint import load_checkpoint
    from cervseg.models.registry import create_model

    loaded = load_checkpoint(builtin_model_path())
    if width is None:
        return loaded.model.eval()
    config = dict(loaded.metadata.model_config, base_width=width)
    return create_model(loaded.metadata.model_name, **config).eval()


def time_it(run: Callable[[], object], repeat: int) -> float:
    """Best-of-``repeat`` seconds of one call, after one warm-up call."""
    run()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def backends(model: torch.nn.Module, x: torch.Tensor) -> dict[str, Callable[[], np.ndarray]]:
    """name -> a call returning the network output for ``x`` as numpy."""
    out: dict[str, Callable[[], np.ndarray]] = {}

    def eager() -> np.ndarray:
        with torch.inference_mode():
            return model(x).numpy()

    out["eager"] = eager

    cl_model = model.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def channels_last() -> np.ndarray:
        with torch.inference_mode():
            return cl_model(x_cl).contiguous().numpy()

    out["channels_last"] = channels_last
    model = model.to(memory_format=torch.contiguous_format)

    with torch.no_grad():
        scripted = torch.jit.freeze(torch.jit.trace(model, x))

    def torchscript() -> np.ndarray:
        with torch.inference_mode():
            return scripted(x).numpy()

    out["torchscript"] = torchscript

    try:
        import onnxruntime as ort
    except ImportError:
        log.info("onnxruntime not installed: ONNX Runtime not measured")
        return out
    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    x_np = x.numpy()

    def onnxruntime() -> np.ndarray:
        return session.run(["y"], {"x": x_np})[0]

    out["onnxruntime"] = onnxruntime
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="", help="comma list of base widths (default: the built-in model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    widths: list[int | None] = [int(w) for w in args.widths.split(",") if w] or [None]
    print(f"threads={args.threads} batch={args.batch} input={args.size}x{args.size}; best of {args.repeat}")
    print(f"{'width':>8} {'backend':>14} {'s/slice':>9} {'max |diff|':>11}")
    for width in widths:
        model = build(width)
        channels = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
        x = torch.from_numpy(np.random.default_rng(0).random((args.batch, channels, args.size, args.size),
                                                              dtype=np.float32))
        calls = backends(model, x)
        reference = calls["eager"]()
        for name, call in calls.items():
            diff = float(np.abs(call() - reference).max())
            seconds = time_it(call, args.repeat) / args.batch
            print(f"{width or 'builtin':>8} {name:>14} {seconds:9.4f} {diff:11.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
