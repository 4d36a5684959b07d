"""``segcli train DATA --preset NAME``: fine-tune SegFormer on a folder dataset."""

from __future__ import annotations

from pathlib import Path

import typer


def train(
    data: Path = typer.Argument(..., help="Dataset folder (see `segcli data check`)."),
    preset: str = typer.Option(None, "--preset", "-p", help="Backbone or segformer preset (`segcli presets`), or a "
                                                            "checkpoint to start from. Taken from the run on --resume."),
    out: Path = typer.Option(None, "--out", "-o", help="Run directory [default: runs/<data>-<preset>]."),
    epochs: int = typer.Option(10, "--epochs", help="Epochs to train."),
    batch_size: int = typer.Option(8, "--batch-size", help="Global batch size (split over replicas)."),
    image_size: str = typer.Option("512", "--image-size", help="Training crop: N or HxW (at least 32)."),
    num_classes: int = typer.Option(None, "--num-classes", help="Class count when the data has no class file."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Val share drawn when there is no val split."),
    seed: int = typer.Option(0, "--seed", help="Seed for the val split, data order, augmentation and init."),
    lr: float = typer.Option(6e-5, "--lr", help="Backbone learning rate (AdamW)."),
    head_lr_mult: float = typer.Option(10.0, "--head-lr-mult", help="Decode-head learning rate = lr x this."),
    weight_decay: float = typer.Option(0.01, "--weight-decay", help="AdamW weight decay (not on norms/biases)."),
    beta_1: float = typer.Option(0.9, "--beta1", help="AdamW beta 1."),
    beta_2: float = typer.Option(0.999, "--beta2", help="AdamW beta 2."),
    warmup_steps: int = typer.Option(None, "--warmup-steps", help="Linear warmup steps [default: min(1500, 10% of "
                                                                  "all steps)]."),
    poly_power: float = typer.Option(1.0, "--poly-power", help="Power of the poly decay."),
    class_weights: str = typer.Option("none", "--class-weights", help="none, auto (median frequency) or one number "
                                                                      "per class, comma-separated."),
    dice_weight: float = typer.Option(0.0, "--dice-weight", help="Add this times the Dice loss to cross-entropy."),
    mixed_precision: bool = typer.Option(False, "--mixed-precision", help="Compute in bfloat16 (mixed_bfloat16)."),
    strategy: str = typer.Option("auto", "--strategy", help="auto, mirrored or multiworker (TF_CONFIG)."),
    patience: int = typer.Option(None, "--patience", help="Stop after this many epochs without a better val mIoU."),
    pretrained: bool = typer.Option(True, "--pretrained/--scratch", help="Use cached pretrained weights if any."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run files in a non-empty --out."),
    json_out: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
) -> None:
    """Fine-tune SegFormer: checks the data first, writes a run directory that predict/eval/export use."""
    from segcli.cli.data_cmd import render_report
    from segcli.cli.output import err, out as stdout, print_json
    from segcli.errors import UsageError

    if out is None:
        if resume:
            raise UsageError("--resume needs --out, the run directory to continue.")
        if not preset:
            raise UsageError("--preset is required (see `segcli presets`), e.g. --preset mit_b0.")
        out = Path("runs") / f"{Path(data).resolve().name}-{Path(preset).name}"
    if not preset and not resume:
        raise UsageError("--preset is required (see `segcli presets`), e.g. --preset mit_b0.")

    from segcli.train.loop import DatasetRefused, TrainSettings, parse_image_size
    from segcli.train.loop import train as run_training
    from segcli.cli.train_progress import RichReporter

    settings = TrainSettings(
        data=str(data), preset=preset or "", out=str(out), epochs=epochs, batch_size=batch_size,
        image_size=parse_image_size(image_size), num_classes=num_classes, val_fraction=val_fraction, seed=seed,
        lr=lr, head_lr_mult=head_lr_mult, weight_decay=weight_decay, beta_1=beta_1, beta_2=beta_2,
        warmup_steps=warmup_steps, poly_power=poly_power, class_weights=class_weights, dice_weight=dice_weight,
        mixed_precision=mixed_precision, strategy=strategy, patience=patience, pretrained=pretrained,
    )
    try:
        result = run_training(settings, reporter=RichReporter(), resume=resume, overwrite=overwrite)
    except DatasetRefused as exc:
        render_report(exc.report, err)
        raise
    if json_out:
        print_json({"out": str(result.out), "epochs_run": result.epochs_run, "best_miou": result.best_miou,
                    "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
                    "per_class": result.per_class, "history": result.history})
        return
    _summary(result, stdout)


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
