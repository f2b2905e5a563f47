"""`cervseg train`: train a model from a YAML config; the same command runs data-parallel under torchrun."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from cervseg.cli.app import command

log = logging.getLogger(__name__)

HELP = (
    "Train a segmentation model on a cache written by `cervseg dataset`, as the YAML config "
    "says (model, loss, preprocessing, augmentation, Adam, early stopping, optional grid "
    "search over learning rate x batch size).\n\n"
    "Writes OUT/config.yaml, OUT/log.csv (loss and validation Dice per structure per epoch), "
    "OUT/best/ (the checkpoint with the lowest validation loss: weights + everything needed "
    "to predict) and OUT/last/ (state to --resume after an interrupt). Relative paths in the "
    "config are relative to the config file's folder."
)
EXAMPLE = """\
Examples:

  cervseg train --config configs/tiny_test.yaml

  cervseg train --config configs/tiny_test.yaml --resume        # after Ctrl-C

  torchrun --standalone --nproc-per-node 2 --no-python cervseg train --config train.yaml
"""


@command("train", help=HELP, epilog=EXAMPLE)
def train(
    config: Path = typer.Option(..., "--config", help="Training config (YAML); see configs/ for examples."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in the config's out_dir."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder instead of the config's out_dir."),
) -> None:
    """Train a model from a YAML config (see HELP)."""
    from cervseg.config import load_config
    from cervseg.train import distributed as D
    from cervseg.train.trainer import train as run

    cfg = load_config(config)
    if cfg.data.template is not None:  # before any data is read: the message names the config
        from cervseg.errors import ConfigError, StructureError
        from cervseg.structures import load_template

        try:
            load_template(cfg.data.template)
        except StructureError as exc:
            raise ConfigError(f"{config}: data.template: {exc}") from None
    if out is not None:
        cfg = cfg.model_copy(update={"out_dir": out.resolve()})
    ctx = D.init_from_env(cfg.device)
    if not ctx.is_main:  # one voice: the other ranks only report problems
        logging.getLogger("cervseg").setLevel(logging.WARNING)
    try:
        result = run(cfg, resume=resume, ctx=ctx, source=str(config))
    except KeyboardInterrupt:
        log.error("interrupted; continue with: cervseg train --config %s --resume", config)
        raise typer.Exit(130) from None
    finally:
        D.shutdown(ctx)
    row = result.best_row
    dice = " ".join(f"{k[5:]}={v:.3f}" for k, v in row.items() if k.startswith("dice_") and k != "dice_mean")
    log.info("best epoch %d of %d: val loss %.4f, val Dice %s", result.best_epoch, result.epochs_run,
             result.best_val_loss, dice)
    log.info("checkpoint: %s", result.checkpoint)
