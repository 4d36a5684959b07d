"""``segcli train DATA --preset NAME``: train SegFormer on a folder dataset.

Options default to None and only the ones the user gave reach :class:`segcli.train.settings.TrainSettings`;
the defaults shown in --help are read from that dataclass and from its two recipes, never repeated here.
Library errors name settings; :func:`flag_of` turns them into this command's flags.
"""

from __future__ import annotations

from pathlib import Path

import typer

from segcli.cli import options as shared
from segcli.train.settings import PAPER, SCRATCH, default_of

#: Settings whose flag is not ``--`` + the name with dashes.
FLAGS = {"beta_1": "--beta1", "beta_2": "--beta2", "data": "DATA"}


def flag_of(setting: str) -> str:
    """``"batch_size"`` -> ``"--batch-size"``."""
    return FLAGS.get(setting, "--" + setting.replace("_", "-"))


def _d(name: str, text: str) -> str:
    return f"{text} [default: {default_of(name)}]"


def _r(name: str, text: str, fmt=str) -> str:
    paper, scratch = getattr(PAPER, name), getattr(SCRATCH, name)
    return f"{text} [default: {fmt(paper)} with pretrained weights, {fmt(scratch)} from scratch]"


EXAMPLES = """

\b
Examples:
  segcli train data/ --preset mit_b1                  # ImageNet encoder: the paper's recipe
  segcli train data/ --preset segformer_b0 --scratch  # random init: the from-scratch recipe
"""


def train(
    data: Path = typer.Argument(..., help="Dataset folder (see `segcli data check`)."),
    preset: str = typer.Option(None, "--preset", "-p", help="Backbone or segformer preset (`segcli presets`), or a "
                                                            "checkpoint to start from. Taken from the run on --resume."),
    out: Path = typer.Option(None, "--out", "-o", help="Run directory [default: runs/<data>-<preset>]."),
    epochs: int = typer.Option(None, "--epochs", help=f"Epochs to train [default: {PAPER.min_epochs}; from scratch, "
                                                      f"enough for {SCRATCH.min_steps} steps on small sets]."),
    batch_size: int = typer.Option(None, "--batch-size", help=_d("batch_size", "Global batch (split over replicas).")),
    image_size: str = typer.Option(None, "--image-size", help="Training crop: N or HxW (at least 32) [default: "
                                                              f"{'x'.join(map(str, default_of('image_size')))}]."),
    num_classes: int = typer.Option(None, "--num-classes", help="Class count when the data has no class file."),
    val_fraction: float = typer.Option(None, "--val-fraction", help=_d("val_fraction", "Val share drawn when "
                                                                                       "there is no val split.")),
    seed: int = typer.Option(None, "--seed", help=_d("seed", "Seed for the val split, data order, augmentation, "
                                                             "init.")),
    lr: float = typer.Option(None, "--lr", help=_r("lr", "Backbone learning rate (AdamW).", "{:g}".format)),
    head_lr_mult: float = typer.Option(None, "--head-lr-mult", help=_r("head_lr_mult", "Head lr = lr x this.",
                                                                       "{:g}".format)),
    weight_decay: float = typer.Option(None, "--weight-decay", help=_d("weight_decay", "AdamW weight decay (not "
                                                                                       "on norms/biases).")),
    beta_1: float = typer.Option(None, "--beta1", help=_d("beta_1", "AdamW beta 1.")),
    beta_2: float = typer.Option(None, "--beta2", help=_d("beta_2", "AdamW beta 2.")),
    warmup_steps: int = typer.Option(None, "--warmup-steps", help=f"Linear warm-up steps [default: min(1500, 10% of "
                                                                  f"all steps) with pretrained weights, "
                                                                  f"{SCRATCH.warmup_share:.0%} of all steps from "
                                                                  f"scratch]."),
    poly_power: float = typer.Option(None, "--poly-power", help=_d("poly_power", "Power of the poly decay.")),
    class_weights: str = typer.Option(None, "--class-weights", help=_r("class_weights", "none, auto (median "
                                                                       "frequency) or one number per class.")),
    dice_weight: float = typer.Option(None, "--dice-weight", help=_d("dice_weight", "Add this x the Dice loss.")),
    precision: str = typer.Option(None, "--precision", help=_d("precision", "fp32, bf16 (CPU with AMX or AVX-512 "
                                                                            "BF16, or GPU) or fp16 (GPU).")),
    mixed_precision: bool = typer.Option(False, "--mixed-precision", hidden=True,
                                         help="Deprecated: same as --precision bf16."),
    cache: str = typer.Option(None, "--cache", help="Decoded pairs kept in memory, on disk (RUN/cache) or none "
                                                    "[default: memory when they fit in a quarter of RAM, else none]."),
    strategy: str = typer.Option(None, "--strategy", help=_d("strategy", "auto, mirrored or multiworker "
                                                                         "(TF_CONFIG).")),
    patience: int = typer.Option(None, "--patience", help="Stop after this many epochs without a better val mIoU."),
    pretrained: bool = typer.Option(default_of("pretrained"), "--pretrained/--scratch",
                                    help="Use cached pretrained weights if any."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run files in a non-empty --out."),
    json_out: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
    json_log: Path = typer.Option(None, "--json-log", help="Append one JSON line per finished epoch to this file."),
    label_map: Path = shared.LABEL_MAP,
    classes: str = typer.Option(None, "--classes", help="a,b,c: train on these classes only, in this order; the "
                                "others become 255."),
) -> None:
    """Train SegFormer: checks the data first, writes a run directory that predict/eval/export use."""
    from segcli.cli.data_cmd import render_report
    from segcli.cli.output import err, out as stdout, print_json, warn
    from segcli.data.image_size import parse_image_size
    from segcli.errors import UsageError

    if out is None:
        if resume:
            raise UsageError("--resume needs --out, the run directory to continue.")
        if not preset:
            raise UsageError("--preset is required (see `segcli presets`), e.g. --preset mit_b0.")
        out = Path("runs") / f"{Path(data).resolve().name}-{Path(preset).name}"
    if not preset and not resume:
        raise UsageError("--preset is required (see `segcli presets`), e.g. --preset mit_b0.")
    if mixed_precision:
        if precision not in (None, "bf16"):
            raise UsageError(f"--mixed-precision means --precision bf16; it contradicts --precision {precision}.")
        err.print("warning: --mixed-precision is deprecated; use --precision bf16.", highlight=False)
        precision = "bf16"
    given = {"epochs": epochs, "batch_size": batch_size, "num_classes": num_classes, "val_fraction": val_fraction,
             "seed": seed, "lr": lr, "head_lr_mult": head_lr_mult, "weight_decay": weight_decay, "beta_1": beta_1,
             "beta_2": beta_2, "warmup_steps": warmup_steps, "poly_power": poly_power,
             "class_weights": class_weights, "dice_weight": dice_weight, "precision": precision, "cache": cache,
             "strategy": strategy, "patience": patience, "label_map": str(label_map) if label_map else None,
             "classes": classes}
    if image_size is not None:
        given["image_size"] = parse_image_size(image_size, "--image-size")

    from segcli.cli.train_progress import RichReporter
    from segcli.train.loop import DatasetRefused, TrainSettings
    from segcli.train.loop import train as run_training
    from segcli.train.progress import JsonLog, Tee
    from segcli.train.settings import SettingError

    settings = TrainSettings(data=str(data), preset=preset or "", out=str(out), pretrained=pretrained,
                             **{k: v for k, v in given.items() if v is not None})
    reporter = Tee(RichReporter(), JsonLog(json_log) if json_log else None)
    try:
        result = run_training(settings, reporter=reporter, resume=resume, overwrite=overwrite,
                              given={"preset": preset, **given},
                              on_ignored=lambda ignored: warn(_ignored_line(out, ignored)))
    except DatasetRefused as exc:
        render_report(exc.report, err)
        raise
    except SettingError as exc:
        raise UsageError(exc.render(flag_of)) from None
    except KeyboardInterrupt:
        from segcli.cli.output import info

        info(_interrupted_line(out))
        raise typer.Exit(130) from None
    if json_out:
        print_json({"out": str(result.out), "epochs_run": result.epochs_run, "best_miou": result.best_miou,
                    "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
                    "per_class": result.per_class, "history": result.history})
        return
    _summary(result, stdout)


train.__doc__ += EXAMPLES


def _value(value) -> str:
    """A setting's value as its flag takes it: ``(64, 64)`` -> ``64x64``, ``0.001`` -> ``0.001``."""
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _ignored_line(out, ignored) -> str:
    """The warning for flags a resumed run ignores (``ignored``: :func:`segcli.train.settings.ignored_on_resume`)."""
    items = ", ".join(f"{flag_of(name)} {_value(value)} (the run has {_value(saved)})"
                      for name, value, saved in ignored)
    return f"--resume continues {out} with its own settings; ignored: {items}."


def _interrupted_line(out: Path) -> str:
    """What a Ctrl-C leaves behind in the run directory ``out``, and how to go on."""
    from segcli.train import checkpoint as ck

    epoch = ck.saved_epoch(out)
    if epoch:
        saved = "epoch 1 is" if epoch == 1 else f"epochs 1-{epoch} are"
        return f"interrupted: {saved} saved in {out}; run the same command with --resume to continue."
    if (Path(out) / ck.CONFIG).is_file():
        return (f"interrupted: no epoch finished, nothing is saved in {out}; run the same command with --resume to "
                f"start it again.")
    return "interrupted: no epoch finished, nothing is saved; run the same command to start again."


def _summary(result, console) -> None:
    from rich.table import Table

    best = "-" if result.best_miou is None else f"{result.best_miou:.4f}"
    table = Table(title=f"Best val mIoU {best} at epoch {result.best_epoch} of {result.epochs_run}"
                        f"{' (early stop)' if result.stopped_early else ''}  run: {result.out}", title_justify="left")
    table.add_column("class")
    table.add_column("IoU", justify="right")
    for row in result.per_class:
        table.add_row(row["name"], "-" if row["iou"] is None else f"{row['iou']:.4f}")
    console.print(table)
