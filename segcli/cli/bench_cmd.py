"""``segcli bench``: how fast the models run here (latency, img/s, GFLOP/s, memory)."""

from __future__ import annotations

import functools
from pathlib import Path

import typer

from segcli.cli import options as shared
from segcli.cli.output import err, info, out, pct, print_json


ONEDNN_STATE = {True: "on", False: "off", None: "unknown"}


def _env_line(env: dict, peak: dict | None) -> str:
    isa = ",".join(env["isa"]) or "no AVX2"
    machine = f"{env['cpu']} ({env['logical_cores']} cores, {isa})"
    if env["tensorflow"] is None:
        return f"{machine} | TensorFlow not loaded (nothing ran in it) | Python {env['python']}"
    line = (f"device {env['device']} | {machine} | "
            f"TF {env['tensorflow']} (oneDNN {ONEDNN_STATE[env['onednn']]}, {env['tf_allocator']} allocator, "
            f"threads intra {env['intra_op_threads'] or 'auto'}/inter {env['inter_op_threads'] or 'auto'}) | "
            f"Keras {env['keras']} | Python {env['python']}")
    if peak:
        how = "measured now" if peak.get("measured_now") else "saved; --peak re-measures"
        line += f"\nfp32 peak: {peak['gflops_per_s']:.1f} GFLOP/s ({peak['matmul_size']}^2 matmul, {how})"
    else:
        line += "\nfp32 peak: unknown (run `segcli bench --peak` once to measure it)"
    return line


def _table(rows):
    from rich.table import Table

    table = Table(title="segcli bench (TensorFlow forward pass, random weights)")
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
    batch_size: list[str] = typer.Option(None, "--batch-size", "-b", help="Batch size(s), e.g. 1,8. Default: 1,8 "
                                         "(with --model: one value, default 1)."),
    warmup: int = typer.Option(1, "--warmup", help="Untimed calls before timing each row."),
    iters: int = typer.Option(5, "--iters", help="Timed calls per row."),
    mixed_precision: bool = typer.Option(False, "--mixed-precision", help="Compute in bfloat16 (mixed_bfloat16)."),
    num_classes: int = typer.Option(None, "--num-classes", help="Classes of segmenter presets without their own "
                                    "count (default 150, ADE20K)."),
    peak: bool = typer.Option(False, "--peak", help="Measure the fp32 matmul peak first (and remember it)."),
    input_dir: Path = typer.Option(None, "--input", help="Also time the whole predict path (decode, infer, "
                                   "write) on the images in this folder."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout: one object per row."),
    model: str = typer.Option(None, "--model", "-m", help="Time this model instead of presets: run dir, .keras, "
                              "model name, .onnx, .tflite or OpenVINO .xml/folder."),
    formats: str = typer.Option(None, "--formats", help="With --model: export it to each of these and compare, "
                                "e.g. keras,onnx,tflite,openvino."),
    data: Path = typer.Option(None, "--data", help="With --model: images to check mask agreement on, and mIoU "
                              "when labelled (eval's layouts; the pairs eval scores, see --split)."),
    split: str = shared.SPLIT,
    precision: str = typer.Option(shared.PRECISION.default, "--precision", help=f"{shared.PRECISION.help} With "
                                  "--formats: the OpenVINO export's precision (int8 calibrates on --data)."),
    backend: str = shared.BACKEND,
) -> None:
    """Time the forward pass of SegFormer presets: latency p50/p90/p99, img/s, GFLOP/s, % of peak, peak RSS.
    With --model, time that model (and its exports with --formats) on real images, on the backend and precision
    predict would use."""
    from segcli.bench import bench as engine

    if model is not None:
        _refuse_flags("for preset rows only (random weights); with --model leave them out", {
            "--preset": bool(preset), "--mixed-precision": mixed_precision, "--num-classes": num_classes is not None,
            "--input": input_dir is not None})
        _refuse_flags("chooses the --data pairs to score; give --data too", {f"--split {split}": split != "auto"
                                                                             and data is None})
        _bench_model(model, formats, data, split, precision, backend, image_size, batch_size, warmup, iters,
                     as_json, peak)
        return
    _refuse_flags("for --model only (a run directory, .keras file, imported name or exported file); preset "
                  "rows time TensorFlow's forward pass with random weights", {
                      "--formats": formats is not None, "--data": data is not None,
                      f"--split {split}": split != "auto",
                      f"--precision {precision}": precision.lower() not in ("auto", "fp32"),
                      f"--backend {backend}": backend.lower() not in ("auto", "tensorflow")})

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
        err.print(env_text, highlight=False)  # the machine line (and the fp32 peak's, where TensorFlow ran)
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


def _refuse_flags(what: str, given: dict) -> None:
    """One error line naming the flags of the other mode that were given: they would be ignored otherwise.

    >>> _refuse_flags("x", {"--data": False})
    >>> _refuse_flags("for --model only", {"--formats": True, "--data": True, "--backend openvino": True})
    Traceback (most recent call last):
    ...
    segcli.errors.UsageError: --formats, --data and --backend openvino: for --model only.
    """
    from segcli.errors import UsageError

    flags = [flag for flag, on in given.items() if on]
    if flags:
        names = " and ".join([", ".join(flags[:-1]), flags[-1]] if len(flags) > 1 else flags)
        raise UsageError(f"{names}: {what}.")


def _bench_model(model, formats, data, split, precision, backend, image_size, batch_size, warmup, iters, as_json,
                 measure_peak=False) -> None:
    from segcli.bench import flops as flops_mod
    from segcli.bench.bench import check_counts, parse_ints, parse_sizes
    from segcli.bench.formats import bench_model, parse_formats
    from segcli.bench.sysinfo import environment
    from segcli.data.image_io import image_folder

    size = _one(parse_sizes(image_size), image_size, "--image-size") if image_size else (512, 512)
    batch = _one(parse_ints(batch_size, "--batch-size"), batch_size, "--batch-size") if batch_size else 1
    check_counts(warmup, iters)
    chosen = parse_formats(formats) if formats else None
    if data is not None:
        image_folder(data, "data")  # before TensorFlow starts
    measured = flops_mod.current_peak(environment(), True) if measure_peak else None

    @functools.cache
    def machine_peak():  # looked up only for a row with FLOPs, whose graph has loaded TensorFlow
        return measured or flops_mod.current_peak(environment())

    rows = bench_model(model, chosen, data, size, batch, warmup, iters, precision.lower(),
                       lambda: (machine_peak() or {}).get("gflops_per_s"),
                       on_row=lambda name: info(f"{name} ..."), backend=backend, split=split,
                       on_note=lambda line: info(f"note: {line}"))
    env = environment(load_tensorflow=False)
    # the peak for the machine line, as saved for this CPU and TF's threads
    env_text = _env_line(env, machine_peak() if env["tensorflow"] is not None else measured)
    if as_json:
        err.print(env_text, highlight=False)  # the machine line (and the fp32 peak's, where TensorFlow ran)
        print_json(rows)
        return
    out.print(env_text, highlight=False)
    out.print(_model_table(model, data, size, batch, rows))


def _one(values: list, given: list, option: str):
    """The one value of ``option`` --model takes (it times one size at one batch size)."""
    from segcli.errors import UsageError

    if len(values) > 1:
        raise UsageError(f"{option} {','.join(given)}: with --model give one value; run bench once per value.")
    return values[0]


def _model_table(model, data, size, batch, rows):
    from rich.table import Table

    scored = next((r for r in rows if r["miou_split"]), None)
    caption = (f"mIoU % as segcli eval gives it, on the {scored['miou_split']} split of {data} "
               f"({scored['miou_images']} images)" if scored else None)
    table = Table(title=f"segcli bench {model} ({size[0]}x{size[1]}, batch {batch}, logits from uint8)",
                  caption=caption)
    for column in ("format", "runtime", "ms/img", "img/s", "GFLOP/img", "% peak", "agreement", "mIoU %"):
        table.add_column(column, justify="left" if column in ("format", "runtime") else "right")
    for r in rows:
        table.add_row(r["format"], r["runtime"], f"{r['ms_per_image']:.1f}", f"{r['img_per_s']:.2f}",
                      f"{r['gflops_per_image']:.2f}" if r["gflops_per_image"] else "-",
                      f"{100 * r['fraction_of_peak']:.1f}" if r["fraction_of_peak"] else "-",
                      "-" if r["mask_agreement"] is None else f"{r['mask_agreement']:.4%}", pct(r["miou"]))
    return table
