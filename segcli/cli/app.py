"""The ``segcli`` command: one registration block composes one small module per command.

Heavy modules (tensorflow, keras, cv2) are imported inside command bodies,
so ``segcli --help`` and ``segcli presets`` start at once. Expected failures
(:class:`~segcli.errors.SegcliError`) become one red line and an exit code;
an error about a library value (``exc.value``, such as ``"image_size"``) is
shown with the flag that set it (``--image-size``).
"""

from __future__ import annotations

import sys

import typer
import typer.core

from segcli.errors import SegcliError, disk_full_reason

TYPER = {"no_args_is_help": True, "add_completion": False, "pretty_exceptions_enable": False,
         "rich_markup_mode": None}

#: A few examples per command, shown at the end of its --help as its one "Examples:" block ("\b" keeps click from
#: rewrapping them); examples a command's docstring ends with are merged into that block (see :func:`_help`).
EXAMPLES = {
    "presets": ["segcli presets", "segcli presets --json"],
    "train": ["segcli train samples --preset segformer_b0 --image-size 128 --epochs 2 --out runs/quick",
              "segcli train data/ --preset mit_b1 --out runs/exp1 --resume"],
    "predict": ["segcli predict samples/photos --model samples/demo_model --out out --tta flip",
                "segcli predict clip.mp4 --out out --model runs/exp1 --every 2 --smooth 0.6"],
    "eval": ["segcli eval samples --model samples/demo_model --report report.html",
             "segcli eval cityscapes/ --model runs/city --label-map labelids_to_trainids.json --tta flip"],
    "export": ["segcli export --model runs/exp1 --format onnx --out model.onnx",
               "segcli export --model samples/demo_model --format openvino --out demo_ov",
               "segcli export --model runs/demo --format openvino --precision int8 --calib photos/ --data val/ "
               "--out demo_ov/"],
    "bench": ["segcli bench --preset segformer_b0 --image-size 512 --batch-size 1,8",
              "segcli bench --model samples/demo_model --formats keras,openvino --data samples"],
    "weights fetch": ["segcli weights fetch segformer_b0_ade20k_512"],
    "weights list": ["segcli weights list --json"],
    "weights import": ["segcli weights import ./segformer-b0-hf --as my_b0", "segcli predict imgs --model my_b0 --out o"],
    "weights path": ["segcli weights path segformer_b0_ade20k_512"],
    "data synth": ["segcli data synth shapes --n 200 --size 128 --seed 1"],
    "data convert": ["segcli data convert coco/instances_train.json --from coco --out data/",
                     "segcli data convert labelme/ --from labelme --classes cat,dog --out data/"],
}


def _epilog(name: str, more=()) -> str:
    lines = [*EXAMPLES[name], *(line for line in more if line not in EXAMPLES[name])]
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


def _help(function, name: str) -> dict:
    """``help`` and ``epilog`` for a command: a docstring's own trailing "Examples:" block is cut from its help
    and merged into the epilog's, so --help shows one block."""
    import inspect

    doc = function.__doc__ or ""
    head, found, tail = doc.partition("Examples:")
    if not found:
        return {"epilog": _epilog(name)}
    head = inspect.cleandoc(head).removesuffix("\b").rstrip()
    more = [line.strip() for line in tail.splitlines() if line.strip()]
    return {"help": head, "epilog": _epilog(name, more)}


def _all_params(command, found=None) -> dict:
    """Every option in the command tree: its Python name -> its first flag."""
    found = {} if found is None else found
    for param in getattr(command, "params", []):
        if param.opts and param.opts[0].startswith("-"):
            found.setdefault(param.name, param.opts[0])
    for sub in getattr(command, "commands", {}).values():
        _all_params(sub, found)
    return found


class _Command(typer.core.TyperCommand):
    """A command that tags its SegcliError with itself, so the error names this command's flags."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SegcliError as exc:
            exc.command = self
            raise


def user_message(exc: SegcliError, command) -> str:
    """The error line: a library value is named by the flag that sets it.

    A message that starts with the value's name ("tile 50: ...") gets the flag in its place
    ("--tile 50: ..."); any other message gets the flag in front.
    """
    value = getattr(exc, "value", None) or ""
    flag = _all_params(getattr(exc, "command", None) or command).get(value)
    text = str(exc)
    if not flag:
        return text
    for name in (value.replace("_", " "), value, flag.lstrip("-").replace("-", " ")):  # out_dir: "out ..."
        if text.startswith(name + " ") or text.startswith(name + ":"):
            return flag + text[len(name):]
    return f"{flag}: {text}"


class _Group(typer.core.TyperGroup):
    """Turns expected failures (SegcliError) into one red line and an exit code."""

    def invoke(self, ctx):
        import os

        from segcli.cli import quiet_tf

        quiet_tf.install()
        # OpenCV's own "[ WARN ] ... PNG input buffer is incomplete" lines: segcli reports the file itself, once
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
        try:
            return super().invoke(ctx)
        except SegcliError as exc:
            from segcli.cli.output import error

            error(user_message(exc, ctx.command))
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            if not disk_full_reason(exc):
                raise
            from segcli.cli.output import error

            where = f" writing {exc.filename}" if exc.filename else ""
            again = "with --resume added" if ctx.invoked_subcommand == "train" else "again"  # a run dir is not empty
            error(f"{disk_full_reason(exc)}{where}; free some space (or write elsewhere), then run the command "
                  f"{again}.")
            raise typer.Exit(2) from None


def _version(show: bool) -> None:
    if not show:
        return
    from importlib.metadata import PackageNotFoundError, version

    from segcli.hardware import cpu_info

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    cpu = cpu_info()
    typer.echo(f"segcli {installed('segcli')}\ntensorflow {installed('tensorflow')}\nkeras {installed('keras')}\n"
               f"openvino {installed('openvino')}\n"
               f"cpu {cpu['cpu']} ({cpu['logical_cores']} cores; {' '.join(cpu['isa']) or 'no AVX2/AVX-512/AMX'})")
    raise typer.Exit()


app = typer.Typer(cls=_Group, name="segcli", help="SegFormer semantic segmentation from the command line.", **TYPER)
data_app = typer.Typer(help="Dataset tools: check a folder dataset, make a synthetic one, convert labels.", **TYPER)
weights_app = typer.Typer(help="Pretrained weights: fetch from the Hugging Face Hub, import a downloaded folder, "
                               "list the cache.", **TYPER)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the versions of segcli, TensorFlow, Keras and "
                                            "OpenVINO, and the CPU's ISA.")):
    """SegFormer semantic segmentation from the command line."""


def _register() -> None:
    from segcli.cli import (bench_cmd, convert_cmd, data_cmd, eval_cmd, export_cmd, predict_cmd, presets_cmd,
                            synth_cmd, train_cmd, weights_cmd)

    app.command("presets", cls=_Command, **_help(presets_cmd.presets, "presets"))(presets_cmd.presets)
    app.command("train", cls=_Command, **_help(train_cmd.train, "train"))(train_cmd.train)
    app.command("predict", cls=_Command, **_help(predict_cmd.predict, "predict"))(predict_cmd.predict)
    app.command("eval", cls=_Command, **_help(eval_cmd.eval_command, "eval"))(eval_cmd.eval_command)
    app.command("export", cls=_Command, **_help(export_cmd.export, "export"))(export_cmd.export)
    app.command("bench", cls=_Command, **_help(bench_cmd.bench, "bench"))(bench_cmd.bench)
    app.add_typer(data_app, name="data")
    data_app.command("check", cls=_Command, help=data_cmd.CHECK_HELP)(data_cmd.check)
    data_app.command("synth", cls=_Command, **_help(synth_cmd.synth, "data synth"))(synth_cmd.synth)
    data_app.command("convert", cls=_Command, **_help(convert_cmd.convert, "data convert"))(convert_cmd.convert)
    app.add_typer(weights_app, name="weights")
    for name, function in (("fetch", weights_cmd.fetch), ("list", weights_cmd.list_weights),
                           ("import", weights_cmd.import_weights), ("path", weights_cmd.path)):
        weights_app.command(name, cls=_Command, **_help(function, f"weights {name}"))(function)


_register()


def _pass_name_bytes_through() -> None:
    """A file name that is not UTF-8 is printed as its own bytes, as ls and find print it, not as a traceback
    (stdout) or a ``\\udcXX`` escape (stderr): Python decodes such names to lone surrogates (PEP 383)."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")


def main() -> None:
    _pass_name_bytes_through()
    app()


if __name__ == "__main__":
    main()
