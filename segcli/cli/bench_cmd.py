"""``segcli bench``: how fast the models run here (latency, img/s, GFLOP/s, memory)."""

from __future__ import annotations

from pathlib import Path

import typer

from segcli.cli.output import err, info, out, print_json


def _env_line(env: dict, peak: dict | None) -> str:
    isa = ",".join(env["isa"]) or "no AVX2"
    line = (f"device {env['device']} | {env['cpu']} ({env['logical_cores']} cores, {isa}) | "
            f"TF {env['tensorflow']} (oneDNN {'on' if env['onednn'] else 'off'}, threads intra "
            f"{env['intra_op_threads'] or 'auto'}/inter {env['inter_op_threads'] or 'auto'}) | "
            f"Keras {env['keras']} | Python {env['python']}")
    if peak:
        how = "measured now" if peak.get("measured_now") else "saved; --peak re-measures"
        line += f"\nfp32 peak: {peak['gflops_per_s']:.1f} GFLOP/s ({peak['matmul_size']}^2 matmul, {how})"
    else:
        line += "\nfp32 peak: unknown (run `segcli bench --peak` once to measure it)"
    return line


def _table(rows):
    from rich.table import Table

    table = Table(title="segcli bench (forward pass, random weights)")
    for column in ("preset", "size", "batch", "img/s", "p50 ms", "p90 ms", "p99 ms", "GFLOP/img", "GFLOP/s",
                   "% peak", "peak RSS MB", "precision"):
        table.add_column(column, justify="left" if column in ("preset", "precision") else "right")
    for r in rows:
        fraction = f"{100 * r['fraction_of_peak']:.1f}" if r["fraction_of_peak"] is not None else "-"
        table.add_row(r["preset"], "x".join(map(str, r["image_size"])), str(r["batch_size"]), f"{r['img_per_s']:.2f}",
                      f"{r['latency_ms_p50']:.1f}", f"{r['latency_ms_p90']:.1f}", f"{r['latency_ms_p99']:.1f}",
                      f"{r['gflops_per_image']:.2f}", f"{r['gflops_per_s']:.1f}", fraction, f"{r['peak_rss_mb']:.0f}",
                      r["precision"])
    return table


def bench(
    preset: list[str] = typer.Option(None, "--preset", "-p", help="Preset(s), repeatable or comma-separated. "
                                     "Default: segformer_b0."),
    image_size: list[str] = typer.Option(None, "--image-size", help="N or HxW; a comma list sweeps. Default: 512."),
    batch_size: list[str] = typer.Option(None, "--batch-size", "-b", help="Batch size(s), e.g. 1,8. Default: 1,8."),
    warmup: int = typer.Option(1, "--warmup", help="Untimed calls before timing each row."),
    iters: int = typer.Option(5, "--iters", help="Timed calls per row."),
    mixed_precision: bool = typer.Option(False, "--mixed-precision", help="Compute in bfloat16 (mixed_bfloat16)."),
    num_classes: int = typer.Option(None, "--num-classes", help="Classes of segmenter presets without their own "
                                    "count (default 150, ADE20K)."),
    peak: bool = typer.Option(False, "--peak", help="Measure the fp32 matmul peak first (and remember it)."),
    input_dir: Path = typer.Option(None, "--input", help="Also time the whole predict path (decode, infer, "
                                   "write) on the images in this folder."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout: one object per row."),
) -> None:
    """Time the forward pass of SegFormer presets: latency p50/p90/p99, img/s, GFLOP/s, % of peak, peak RSS."""
    from segcli.bench import bench as engine

    config = engine.BenchConfig(
        presets=engine.parse_presets(preset) if preset else list(engine.DEFAULT_PRESETS),
        sizes=engine.parse_sizes(image_size) if image_size else list(engine.DEFAULT_SIZES),
        batch_sizes=engine.parse_ints(batch_size, "--batch-size") if batch_size else list(engine.DEFAULT_BATCH_SIZES),
        warmup=warmup, iters=iters, mixed_precision=mixed_precision, num_classes=num_classes, measure_peak=peak,
        input_dir=input_dir,
    )
    config.check()

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        state = {}

        def on_row_start(label, total):
            if "task" in state:
                progress.remove_task(state["task"])
            state["task"] = progress.add_task(label, total=total)

        def on_iter(done):
            progress.update(state["task"], completed=done)

        report = engine.run_bench(config, on_row_start=on_row_start, on_iter=on_iter)

    env_text = _env_line(report.environment, report.peak)
    if as_json:
        info(env_text)
        print_json(report.rows)
        return
    out.print(env_text, highlight=False)
    out.print(_table(report.rows))
    if report.end_to_end:
        e2e = report.end_to_end
        out.print(f"end to end on {e2e['images']} images from {e2e['input']} ({e2e['how']}): "
                  f"{e2e['img_per_s']:.2f} img/s, {e2e['ms_per_image']:.1f} ms/image "
                  f"(forward alone at batch {e2e['batch_size']}: {e2e['forward_ms_per_image']:.1f} ms/image)",
                  highlight=False)
