"""How much does `segcli predict` cost on top of the network's forward pass, and how much memory does slide
mode need for a huge image?

1. Overhead: a folder of 512x512 JPEGs, SegFormer-B0 with 150 classes (random init: the timing is the same as
   with trained weights). The forward pass is timed the way `segcli bench` times it
   (`segcli.bench.bench.forward_function`, full-resolution softmax output); predict is timed end to end with
   `segcli.inference.predict.run_predict` (read, resize, infer, upsample, argmax, write masks and overlays) after
   one untimed pass that traces the network. Goal: overhead <= 10%.
2. Memory: one 8000x8000 image through `segcli predict --mode slide` (and `--mode whole`) in a fresh process,
   B0 with 150 classes; peak RSS from getrusage, next to the same process's RSS just before predicting.
3. Exported files (issue 12 item 6): segcli's own `.onnx`, `.tflite` and OpenVINO `.xml` exports of one B0
   (150 classes, the transformers weights of `compare_peers.py`, imported into a private SEGCLI_HOME), each
   timed in a fresh process three ways on the same 512x512 JPEGs and batch size:
   - the raw runtime: `InferenceSession.run` / `Interpreter.invoke` / `InferRequest.infer` on a decoded uint8
     batch, default options as a plain script would use them (the runtime's img/s; the target's yardstick);
   - segcli's runner alone (`open_model(path).model.predict_logits` on the same batch);
   - the raw runtime end to end, as a plain script would do predict's job with it: cv2 decode, the runtime's
     forward, `tf.image.resize` + `tf.argmax` to 512x512 in one tf.function (the fastest plain post-processing
     measured: cv2.resize cannot take 150 channels, and resizing 75-channel halves + np.argmax was 4x slower),
     cv2 PNG write;
   - `segcli predict --model FILE` end to end (`run_predict`, masks only): decode, forward, upsample, argmax,
     PNG write. Goal: >= 90% of the raw runtime's img/s. Compared with the raw forward it pays for the work the
     forward leaves out; compared with the raw end-to-end script it does the same work.
   Every child records the CPU other processes used during its timed part ("foreign" cores) and the load.

    .venv/bin/python benchmarks/predict_overhead.py                 # both, prints tables
    .venv/bin/python benchmarks/predict_overhead.py --write         # also writes benchmarks/PREDICT_RESULTS.md
    .venv/bin/python benchmarks/predict_overhead.py --skip-memory   # overhead only (about a minute)
    .venv/bin/python benchmarks/predict_overhead.py --exported-only --write-exported   # item 3 (~6 min):
        # writes benchmarks/RESULTS_exported.md (needs compare_peers.py's work folder, made if missing)
    .venv/bin/python benchmarks/predict_overhead.py --exported-only --exported-batches 8 --passes 2 --rounds 3 \
        --retries 0 --write-exported   # the end-to-end pair in 3 alternating rounds: a steadier ratio
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "PREDICT_RESULTS.md"
EXPORTED_RESULTS = HERE / "RESULTS_exported.md"
EXPORTED = {"onnx": "segcli_b0.onnx", "tflite": "segcli_b0.tflite", "openvino": "segcli_b0_ov"}
#: JPEGs of the exported-file runs (two batches of 8 per pass).
EXPORTED_IMAGES = 16


def rss_mb() -> float:
    """Peak RSS of this process (VmHWM: ru_maxrss would include a parent's peak across fork + exec)."""
    from segcli.bench.bench import peak_rss_mb

    return peak_rss_mb()


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (max(2, h // 32), max(2, w // 32), 3)).astype(np.float32)
    image = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0, 6, (h, w, 3)).astype(np.float32) if h * w <= 4096 * 4096 else 0
    return np.clip(image, 0, 255).astype(np.uint8)


def write_images(folder: Path, count: int, size: int) -> None:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(folder / f"img_{i:04d}.jpg"), smooth_image(size, size, i)[:, :, ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 90])


def measure_overhead(args) -> dict:
    import tensorflow as tf

    from segcli.bench.bench import build_model, forward_function, latency_stats, time_forward
    from segcli.inference.runners import OpenedModel
    from segcli.classes import ClassTable
    from segcli.inference.predict import PredictOptions, run_predict

    model = build_model(args.preset, args.num_classes)
    classes = ClassTable.from_names([]).complete(args.num_classes)
    source = OpenedModel(model, classes, f"{args.preset} (random init)", None)
    batch, size = args.batch_size, args.size
    images = tf.random.uniform((batch, size, size, 3), 0.0, 255.0, seed=1)
    fn = forward_function(model, batch, size, size)
    forward = latency_stats(time_forward(fn, images, warmup=2, iters=args.iters), batch)

    rows = []
    with tempfile.TemporaryDirectory(prefix="segcli-predict-bench-") as tmp:
        folder = Path(tmp) / "images"
        write_images(folder, args.images, size)
        for label, overlay in (("masks + overlays", True), ("masks only", False)):
            options = PredictOptions(out=Path(tmp) / "out", batch_size=batch, overlay=overlay)
            run_predict([str(folder)], source, options)  # untimed: traces the network, warms the caches
            options.overwrite = True
            start = time.perf_counter()
            summary = run_predict([str(folder)], source, options)
            seconds = time.perf_counter() - start
            written = summary["count"]["written"]
            img_s = written / seconds
            rows.append({"what": f"segcli predict ({label})", "images": written, "img_per_s": round(img_s, 2),
                         "ms_per_image": round(1000 / img_s, 1),
                         "overhead_pct": round(100 * (forward["img_per_s"] / img_s - 1), 1)})
    return {"preset": args.preset, "num_classes": args.num_classes, "size": size, "batch_size": batch,
            "forward": {"img_per_s": forward["img_per_s"], "ms_per_image": round(1000 / forward["img_per_s"], 1),
                        "latency_ms_p50": forward["latency_ms_p50"]},
            "predict": rows, "peak_rss_mb": round(rss_mb(), 1)}


def child_memory(args) -> None:
    """Runs in a fresh process: one big image through run_predict; prints JSON."""
    from segcli.bench.bench import build_model
    from segcli.inference.runners import OpenedModel
    from segcli.classes import ClassTable
    from segcli.inference.predict import PredictOptions, run_predict

    model = build_model(args.preset, args.num_classes)
    classes = ClassTable.from_names([]).complete(args.num_classes)
    source = OpenedModel(model, classes, args.preset, None)
    before = current_rss_mb()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="segcli-rss-") as tmp:
        summary = run_predict([args.child_image], source, PredictOptions(out=Path(tmp), mode=args.child_mode,
                                                                         batch_size=args.batch_size))
    seconds = time.perf_counter() - start
    assert summary["count"]["written"] == 1, summary
    print(json.dumps({"mode": args.child_mode, "rss_before_mb": round(before, 1),
                      "peak_rss_mb": round(rss_mb(), 1), "seconds": round(seconds, 1)}))


def measure_memory(args) -> list[dict]:
    import cv2

    results = []
    with tempfile.TemporaryDirectory(prefix="segcli-big-") as tmp:
        image_path = Path(tmp) / "big_8000.jpg"
        cv2.imwrite(str(image_path), smooth_image(args.big, args.big, 0)[:, :, ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        for mode in args.memory_modes.split(","):
            cmd = [sys.executable, __file__, "--child-image", str(image_path), "--child-mode", mode,
                   "--preset", args.preset, "--num-classes", str(args.num_classes), "--batch-size",
                   str(args.batch_size)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["image"] = f"{args.big}x{args.big}"
            results.append(row)
            print(f"  {mode}: {row}", file=sys.stderr)
    return results


def render(overhead: dict | None, memory: list | None) -> str:
    import platform

    lines = ["# predict: end-to-end overhead and big-image memory", "",
             f"Written by `benchmarks/predict_overhead.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), shared with other jobs, so "
             f"absolute numbers are noisy.", ""]
    if overhead:
        f = overhead["forward"]
        lines += [f"## Overhead: {overhead['preset']}, {overhead['num_classes']} classes, "
                  f"{overhead['size']}x{overhead['size']} JPEGs, batch {overhead['batch_size']}", "",
                  "| what | img/s | ms/image | overhead vs forward |", "|---|---:|---:|---:|",
                  f"| forward pass only (as `segcli bench`) | {f['img_per_s']} | {f['ms_per_image']} | - |"]
        for row in overhead["predict"]:
            lines.append(f"| {row['what']}, {row['images']} images | {row['img_per_s']} | {row['ms_per_image']} | "
                         f"{row['overhead_pct']:+.1f}% |")
        lines.append("")
    if memory:
        lines += ["## Peak memory for one 8000x8000 image (B0, 150 classes)", "",
                  "| mode | RSS before predict (MB) | peak RSS (MB) | seconds |", "|---|---:|---:|---:|"]
        for row in memory:
            lines.append(f"| {row['mode']} | {row['rss_before_mb']} | {row['peak_rss_mb']} | {row['seconds']} |")
        lines.append("")
    return "\n".join(lines)


# --- exported files: segcli predict vs the raw runtime ----------------------------------------------------------------
def _exports(work: Path) -> dict:
    """segcli's fp32 exports of compare_peers' B0 (made once in ``work``)."""
    env = {**os.environ, "SEGCLI_HOME": str(work / "home")}
    # always: compare_peers rewrites the shared JPEGs to its own count, and 8 JPEGs at batch 8 would leave predict's
    # pipeline nothing to overlap (one batch per pass); the setup skips whatever exists
    subprocess.run([sys.executable, str(HERE / "compare_peers.py"), "--setup", "--arch", "b0", "--work", str(work),
                    "--images", str(EXPORTED_IMAGES)], check=True, env=env)
    info = json.loads((work / "setup_b0.json").read_text())
    from segcli.export.openvino_cache import converter_digest

    # named by the digest of segcli's model and converter code: a changed graph is exported again, never reused
    digest = converter_digest()
    paths = {fmt: work / name.replace("segcli_b0", f"segcli_b0_{digest}") for fmt, name in EXPORTED.items()}
    code = ("import sys; from segcli.export.api import export_model\n"
            "for fmt, path in zip(sys.argv[2::2], sys.argv[3::2]):\n"
            "    export_model(sys.argv[1], fmt, path, sample_size=(512, 512), overwrite=True)\n")
    todo = [str(x) for fmt, path in paths.items() if not path.exists() for x in (fmt, path)]
    if todo:
        subprocess.run([sys.executable, "-c", code, info["model"], *todo], check=True, env=env, cwd=HERE.parent)
    return {"images": info["images"], "paths": {k: str(v) for k, v in paths.items()}, "env": env}


def raw_runner(fmt: str, path: str):
    """The runtime as a plain script opens it: default options (OpenVINO: f32 precision), all cores."""
    threads = len(os.sched_getaffinity(0))
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]
    if fmt == "tflite":
        from segcli.export.tflite_format import interpreter_class

        interpreter = interpreter_class()[0](model_path=path, num_threads=threads)
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        shape = [None]

        def run(x):
            if shape[0] != x.shape:
                interpreter.resize_tensor_input(inp["index"], list(x.shape), strict=False)
                interpreter.allocate_tensors()
                shape[0] = x.shape
            interpreter.set_tensor(inp["index"], x)
            interpreter.invoke()
            return interpreter.get_tensor(out["index"])

        return run
    import openvino as ov

    # f32 said explicitly: OpenVINO 2026.4 defaults to bf16 on CPUs with AVX-512 BF16, and the file is an fp32 IR
    compiled = ov.Core().compile_model(str(Path(path) / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()

    def run(x):
        request.infer({0: x})
        return request.get_output_tensor(0).data

    return run


def exported_child(args) -> dict:
    """One measurement in this fresh process; prints JSON."""
    sys.path.insert(0, str(HERE))
    from compare_peers import Meter, load1

    from segcli.data.image_io import read_image

    files = sorted(Path(args.images_dir).glob("*.jpg"))
    batch = np.stack([read_image(f) for f in files[:args.batch_size]])
    what, fmt, path = args.exported_child.split(":", 2)
    load_start = load1()
    if what in ("raw", "runner"):
        if what == "raw":
            run = raw_runner(fmt, path)
        else:
            from segcli.inference.runners import open_model

            run = open_model(path, precision="fp32").model.predict_logits  # the raw runs are f32 too
        run(batch)
        times, foreign = [], []
        for _ in range(max(3, 2 * len(files) // args.batch_size)):
            with Meter() as m:
                run(batch)
            times.append(m.seconds)
            foreign.append(m.foreign_cores)
        import statistics

        seconds = statistics.median(times) / args.batch_size
        return {"img_per_s": 1 / seconds, "foreign_cores": round(max(foreign), 2), "load_start": load_start}
    if what == "raw-e2e":
        return _raw_end_to_end(raw_runner(fmt, path), files, args) | {"load_start": load_start}
    from segcli.inference.predict import PredictOptions, run_predict
    from segcli.inference.runners import open_model

    opened = open_model(path, precision="fp32")
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm"
        warm.mkdir()
        for f in files[:args.batch_size]:
            (warm / f.name).symlink_to(f)
        run_predict([str(warm)], opened, PredictOptions(out=Path(tmp) / "w", batch_size=args.batch_size,
                                                        overlay=False))
        options = PredictOptions(out=Path(tmp) / "out", batch_size=args.batch_size, overlay=False, overwrite=True)
        rates, foreign = [], []
        for _ in range(args.passes):
            with Meter() as m:
                if args.profile:
                    import cProfile

                    cProfile.runctx("run_predict([args.images_dir], opened, options)", globals(), locals(),
                                    args.profile)
                else:
                    run_predict([args.images_dir], opened, options)
            rates.append(len(files) / m.seconds)
            foreign.append(m.foreign_cores)
    import statistics

    return {"img_per_s": statistics.median(rates), "foreign_cores": round(max(foreign), 2),
            "load_start": load_start}


def _raw_end_to_end(run, files, args) -> dict:
    """A plain script doing predict's job with the runtime: decode, forward, resize + argmax, PNG write."""
    import statistics

    import cv2
    import tensorflow as tf

    from compare_peers import SIZE, Meter

    @tf.function
    def masks(logits):
        return tf.cast(tf.argmax(tf.image.resize(logits, (SIZE, SIZE)), -1), tf.uint8)

    def one_pass(out: Path):
        for s in range(0, len(files), args.batch_size):
            chunk = files[s:s + args.batch_size]
            batch = np.stack([cv2.imread(str(f), cv2.IMREAD_COLOR)[:, :, ::-1] for f in chunk])
            for f, mask in zip(chunk, masks(run(batch)).numpy()):
                cv2.imwrite(str(out / f"{f.stem}.png"), mask)

    with tempfile.TemporaryDirectory() as tmp:
        one_pass(Path(tmp))  # warm-up: the runtime's first call and the tf.function trace
        rates, foreign = [], []
        for _ in range(args.passes):
            with Meter() as m:
                one_pass(Path(tmp))
            rates.append(len(files) / m.seconds)
            foreign.append(m.foreign_cores)
    return {"img_per_s": statistics.median(rates), "foreign_cores": round(max(foreign), 2)}


def _exported_cell(args, made, what, fmt, path, batch) -> dict:
    """One child process timing ``what`` on one file; re-run up to ``--retries`` times while others load the CPU."""
    best = None
    for _ in range(1 + args.retries):
        cmd = [sys.executable, __file__, "--exported-child", f"{what}:{fmt}:{path}", "--images-dir",
               made["images"], "--batch-size", str(batch), "--passes", str(args.passes)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=made["env"])
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
        got = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {fmt} b{batch} {what}: {got}", file=sys.stderr, flush=True)
        if best is None or got["foreign_cores"] < best["foreign_cores"]:
            best = got
        if got["foreign_cores"] <= args.max_foreign:
            break
    return best


def _median_cell(cells: list[dict]) -> dict:
    import statistics

    return {"img_per_s": statistics.median(c["img_per_s"] for c in cells),
            "foreign_cores": max(c["foreign_cores"] for c in cells)}


def measure_exported(args) -> dict:
    """Per file and batch: the raw forward and the runner once, then ``--rounds`` rounds of the raw end-to-end
    script and predict in alternating order, so that both sides of the ratio see the same minutes of the machine.
    """
    sys.path.insert(0, str(HERE))
    made = _exports(Path(args.work))
    rows = {}
    for fmt in args.formats.split(","):
        path = made["paths"][fmt]
        for batch in [int(b) for b in args.exported_batches.split(",")]:
            row = {what: _exported_cell(args, made, what, fmt, path, batch) for what in ("raw", "runner")}
            rounds = []
            for r in range(args.rounds):
                order = ("raw-e2e", "predict") if r % 2 == 0 else ("predict", "raw-e2e")
                rounds.append({what: _exported_cell(args, made, what, fmt, path, batch) for what in order})
            row["raw-e2e"] = _median_cell([r["raw-e2e"] for r in rounds])
            row["predict"] = _median_cell([r["predict"] for r in rounds])
            row["ratios"] = [r["predict"]["img_per_s"] / r["raw-e2e"]["img_per_s"] for r in rounds]
            rows[(fmt, batch)] = row
    return {"rows": rows, "images": len(list(Path(made["images"]).glob("*.jpg"))), "load_end": os.getloadavg(),
            "rounds": args.rounds}


def _rounds_note(rounds: int) -> str:
    if rounds == 1:
        return ""
    return (f" Raw end to end and predict: {rounds} rounds in alternating order, a process each; their img/s are "
            f"the medians, and 'predict / raw e2e' is the median of the {rounds} rounds' ratios (their range in "
            f"brackets).")


def _ratio_cell(row: dict) -> str:
    """'predict / raw e2e': the median of the rounds' ratios, with their range when there are several.

    >>> _ratio_cell({"ratios": [0.81, 0.95, 1.02]})
    '95% (81-102%)'
    >>> _ratio_cell({"ratios": [0.9]})
    '90%'
    """
    import statistics

    ratios = row["ratios"]
    text = f"{100 * statistics.median(ratios):.0f}%"
    return text if len(ratios) == 1 else f"{text} ({100 * min(ratios):.0f}-{100 * max(ratios):.0f}%)"


def render_exported(result: dict, title: str, load_start) -> str:
    from segcli.hardware import cpu_info

    cpu = cpu_info()
    lines = [f"### {title}", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu['cpu']}, {cpu['logical_cores']} cores, "
             f"ISA {', '.join(cpu['isa'])}; load average {'/'.join(f'{v:.2f}' for v in load_start)} at the start, "
             f"{'/'.join(f'{v:.2f}' for v in result['load_end'])} at the end. {result['images']} JPEGs 512x512, "
             f"SegFormer-B0, 150 classes; each cell its own process; 'foreign' = cores other processes used."
             + _rounds_note(result.get("rounds", 1)), "",
             "| file | batch | raw forward img/s | segcli runner img/s | raw end to end img/s | "
             "segcli predict e2e img/s (masks) | predict / raw e2e | predict / raw forward | "
             "foreign (raw/runner/raw e2e/predict) |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for (fmt, batch), row in result["rows"].items():
        raw, runner, e2e, pred = row["raw"], row["runner"], row["raw-e2e"], row["predict"]
        lines.append(f"| {EXPORTED[fmt]} | {batch} | {raw['img_per_s']:.2f} | {runner['img_per_s']:.2f} | "
                     f"{e2e['img_per_s']:.2f} | {pred['img_per_s']:.2f} | "
                     f"**{_ratio_cell(row)}** | "
                     f"{100 * pred['img_per_s'] / raw['img_per_s']:.0f}% | "
                     f"{raw['foreign_cores']}/{runner['foreign_cores']}/{e2e['foreign_cores']}/"
                     f"{pred['foreign_cores']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="segformer_b0")
    parser.add_argument("--num-classes", type=int, default=150)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--big", type=int, default=8000)
    parser.add_argument("--memory-modes", default="slide,whole")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.name}")
    parser.add_argument("--child-image", help=argparse.SUPPRESS)
    parser.add_argument("--child-mode", help=argparse.SUPPRESS)
    parser.add_argument("--exported-only", action="store_true", help="only the exported-file comparison")
    parser.add_argument("--skip-exported", action="store_true")
    parser.add_argument("--formats", default="onnx,tflite,openvino")
    parser.add_argument("--exported-batches", default="1,8")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--retries", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1,
                        help="exported files: rounds of raw end to end and predict, alternating")
    parser.add_argument("--max-foreign", type=float, default=0.5)
    parser.add_argument("--work", default="/tmp/segcli_peers", help="compare_peers.py's work folder")
    parser.add_argument("--title", default="segcli predict on exported files vs the raw runtime")
    parser.add_argument("--write-exported", action="store_true", help=f"append to {EXPORTED_RESULTS.name}")
    parser.add_argument("--profile", help="cProfile output of the predict child")
    parser.add_argument("--exported-child", help=argparse.SUPPRESS)
    parser.add_argument("--images-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_image:
        child_memory(args)
        return
    if args.exported_child:
        print(json.dumps(exported_child(args)))
        return
    if not args.skip_exported:
        load_start = os.getloadavg()
        text = render_exported(measure_exported(args), args.title, load_start)
        print(text)
        if args.write_exported:
            with open(EXPORTED_RESULTS, "a") as f:
                f.write(text + "\n")
        if args.exported_only:
            return
    overhead = None if args.skip_overhead else measure_overhead(args)
    memory = None if args.skip_memory else measure_memory(args)
    text = render(overhead, memory)
    print(text)
    if args.write:
        RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
