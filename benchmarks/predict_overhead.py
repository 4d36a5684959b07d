"""How much does `segcli predict` on an exported file cost on top of its runtime (issue 12 item 6)?

(predict's cost beyond the forward for a checkpoint is in compare_peers.py's "fwd" columns, and the memory for one
huge image in big_image_memory.py; this script measured both until 2026-12-08.)

segcli's own `.onnx`, `.tflite` and OpenVINO `.xml` exports of one B0 (150 classes, the transformers weights of
`compare_peers.py`, imported into a private SEGCLI_HOME), each timed in a fresh process four ways on the same
512x512 JPEGs and batch size:
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

    .venv/bin/python benchmarks/predict_overhead.py --write-exported   # about 6 minutes;
        # writes benchmarks/RESULTS_exported.md (needs compare_peers.py's work folder, made if missing)
    .venv/bin/python benchmarks/predict_overhead.py --exported-batches 8 --passes 2 --rounds 3 \
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
EXPORTED_RESULTS = HERE / "RESULTS_exported.md"
EXPORTED = {"onnx": "segcli_b0.onnx", "tflite": "segcli_b0.tflite", "openvino": "segcli_b0_ov"}
#: JPEGs of the exported-file runs (two batches of 8 per pass).
EXPORTED_IMAGES = 16


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
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--exported-only", action="store_true",
                        help="the only job now; kept so the commands in RESULTS_exported.md still run")
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
    if args.exported_child:
        print(json.dumps(exported_child(args)))
        return
    load_start = os.getloadavg()
    text = render_exported(measure_exported(args), args.title, load_start)
    print(text)
    if args.write_exported:
        with open(EXPORTED_RESULTS, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
