"""How hard is the phantom? Train a plain 2D U-Net briefly on 20 `small` patients, test on 5 others.

The phantom is only useful if it separates models: a plain U-Net trained for a small fixed
budget should give a per-structure Dice spread like the papers' (femoral heads and bladder
easiest; rectum, small bowel and the CTVs hardest) and no structure above 0.97.

Model: monai.networks.nets.UNet (2D, channels 16-32-64-128-256, no residual units), 9 sigmoid
outputs (the structures may touch and overlap after observer variation), DiceCE loss, Adam,
fixed number of iterations, no augmentation; input HU clipped to [-250, 450], a 192x192
crop centred on the patient. Test: 3D Dice per patient and structure (threshold 0.5).

    python benchmarks/phantom_calibration.py --iterations 900 --seed 2024

prints the per-structure table (mean, SD, min, max over the 5 test patients) and timings.
With ``--observer-ceiling`` it trains nothing and prints instead the Dice between the
observer's contours and the same patients' contours drawn without observer wobble: the
part of the disagreement no model can remove.
Results and the exact command are recorded in docs/phantom.md.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.networks.nets import UNet

from cervseg.phantom.cohort import patient_seeds
from cervseg.phantom.generator import generate_patient
from cervseg.phantom.truth import STRUCTURE_NAMES

CROP = 192
HU_LO, HU_HI = -250.0, 450.0


def centre_crop_box(hu: np.ndarray) -> tuple[int, int]:
    """Top-left (row, col) of a CROP x CROP window centred on the patient's body."""
    body = hu > -300
    prof_r = body.sum(axis=(0, 2)).astype(float)
    prof_c = body.sum(axis=(0, 1)).astype(float)
    r = int(round(np.sum(np.arange(len(prof_r)) * prof_r) / max(prof_r.sum(), 1)))
    c = int(round(np.sum(np.arange(len(prof_c)) * prof_c) / max(prof_c.sum(), 1)))
    ny, nx = hu.shape[1:]
    r0 = int(np.clip(r - CROP // 2 - 8, 0, ny - CROP))  # bias upwards: the couch pulls the centre down
    c0 = int(np.clip(c - CROP // 2, 0, nx - CROP))
    return r0, c0


def load(seeds: list[int], preset: str) -> list[dict]:
    cases = []
    for s in seeds:
        t = time.time()
        vol, labels = generate_patient(s, preset)
        hu = vol.array
        r0, c0 = centre_crop_box(hu)
        bits = np.zeros(hu.shape, np.uint16)
        for i, name in enumerate(STRUCTURE_NAMES):
            bits |= labels[name].astype(np.uint16) << i
        cases.append({"seed": s, "hu": hu, "bits": bits, "crop": (r0, c0), "labels": labels})
        print(f"  patient {s}: {hu.shape[0]} slices of {vol.geometry.spacing[0]:.0f} mm, "
              f"{vol.geometry.spacing[1]:.2f} mm pixels, {time.time() - t:.1f} s", flush=True)
    return cases


def to_input(hu: np.ndarray) -> np.ndarray:
    x = np.clip(hu.astype(np.float32), HU_LO, HU_HI)
    return (x - (HU_LO + HU_HI) / 2) / ((HU_HI - HU_LO) / 2)


def batch(cases: list[dict], index: list[tuple[int, int]], rng: np.random.Generator, size: int):
    pick = rng.integers(len(index), size=size)
    xs, ys = [], []
    for j in pick:
        ci, k = index[j]
        c = cases[ci]
        r0, c0 = c["crop"]
        xs.append(to_input(c["hu"][k, r0:r0 + CROP, c0:c0 + CROP]))
        b = c["bits"][k, r0:r0 + CROP, c0:c0 + CROP]
        ys.append(np.stack([(b >> i) & 1 for i in range(len(STRUCTURE_NAMES))]).astype(np.float32))
    return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys))


def predict(net: torch.nn.Module, case: dict) -> np.ndarray:
    """(n_structures, z, y, x) bool on the full grid."""
    hu = case["hu"]
    r0, c0 = case["crop"]
    out = np.zeros((len(STRUCTURE_NAMES),) + hu.shape, bool)
    net.eval()
    with torch.no_grad():
        for k0 in range(0, hu.shape[0], 16):
            x = torch.from_numpy(to_input(hu[k0:k0 + 16, r0:r0 + CROP, c0:c0 + CROP])[:, None])
            p = torch.sigmoid(net(x)).numpy() > 0.5
            out[:, k0:k0 + 16, r0:r0 + CROP, c0:c0 + CROP] = p.transpose(1, 0, 2, 3)
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else 1.0


def observer_ceiling(args: argparse.Namespace) -> None:
    from cervseg.phantom.presets import get_preset

    preset = get_preset(args.preset)
    exact = preset.with_overrides(observer_mm=0.0)
    seeds = patient_seeds(args.seed, args.train + args.test)[args.train:]
    scores = np.zeros((len(seeds), len(STRUCTURE_NAMES)))
    for pi, s in enumerate(seeds):
        _, drawn = generate_patient(s, preset)
        _, smooth = generate_patient(s, exact)
        for si, name in enumerate(STRUCTURE_NAMES):
            scores[pi, si] = dice(drawn[name], smooth[name])
    print(f"observer contours vs. the same contours without wobble, {len(seeds)} '{args.preset}' test patients")
    print(f"{'structure':<14} {'mean':>6} {'min':>6}")
    for si, name in enumerate(STRUCTURE_NAMES):
        print(f"{name:<14} {scores[:, si].mean():6.3f} {scores[:, si].min():6.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=900)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=2024, help="cohort seed (train = first 20, test = next 5)")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--train", type=int, default=20)
    ap.add_argument("--test", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--observer-ceiling", action="store_true", help="only score observer vs. anatomy")
    args = ap.parse_args()
    if args.observer_ceiling:
        observer_ceiling(args)
        return
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    seeds = patient_seeds(args.seed, args.train + args.test)
    t0 = time.time()
    print(f"generating {len(seeds)} '{args.preset}' patients", flush=True)
    train = load(seeds[:args.train], args.preset)
    test = load(seeds[args.train:], args.preset)
    t_gen = time.time() - t0
    index = [(ci, k) for ci, c in enumerate(train) for k in range(c["hu"].shape[0])]
    net = UNet(spatial_dims=2, in_channels=1, out_channels=len(STRUCTURE_NAMES),
               channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), num_res_units=0)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    loss_fn = DiceCELoss(sigmoid=True, batch=True)
    t1 = time.time()
    net.train()
    for it in range(args.iterations):
        warm = min(1.0, (it + 1) / 20)
        lr = args.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * it / args.iterations)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch(train, index, rng, args.batch)
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        if (it + 1) % 50 == 0:
            print(f"  iteration {it + 1}/{args.iterations}: loss {loss.item():.3f} "
                  f"({(time.time() - t1) / (it + 1):.2f} s/it)", flush=True)
    t_train = time.time() - t1
    scores = np.zeros((len(test), len(STRUCTURE_NAMES)))
    for pi, case in enumerate(test):
        pred = predict(net, case)
        for si, name in enumerate(STRUCTURE_NAMES):
            scores[pi, si] = dice(pred[si], case["labels"][name])
    print()
    print(f"train {len(train)} patients ({len(index)} slices), test {len(test)}; "
          f"{args.iterations} iterations x batch {args.batch}; generation {t_gen:.0f} s, training {t_train:.0f} s")
    print(f"{'structure':<14} {'mean':>6} {'sd':>6} {'min':>6} {'max':>6}")
    order = np.argsort(-scores.mean(axis=0))
    for si in order:
        col = scores[:, si]
        print(f"{STRUCTURE_NAMES[si]:<14} {col.mean():6.3f} {col.std():6.3f} {col.min():6.3f} {col.max():6.3f}")
    print(f"{'mean':<14} {scores.mean():6.3f}")


if __name__ == "__main__":
    main()
