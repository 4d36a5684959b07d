"""The ``segcli`` command: composes one small module per command.

Heavy modules (tensorflow, keras, cv2) are imported inside command bodies,
so ``segcli --help`` and ``segcli presets`` start at once.
"""

from __future__ import annotations

import typer
import typer.core

from segcli.errors import SegcliError


class _Group(typer.core.TyperGroup):
    """Turns expected failures (SegcliError) into one red line and an exit code."""

    def invoke(self, ctx):
        from segcli.cli import quiet_tf

        quiet_tf.install()
        try:
            return super().invoke(ctx)
        except SegcliError as exc:
            from segcli.cli.output import error

            error(str(exc))
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Group,
    name="segcli",
    help="SegFormer semantic segmentation from the command line.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    """SegFormer semantic segmentation from the command line."""


def _register() -> None:
    from segcli.cli import presets_cmd

    app.command("presets")(presets_cmd.presets)
    from segcli.cli import data_cmd, weights_cmd

    app.add_typer(weights_cmd.weights_app, name="weights")
    from segcli.cli import export_cmd

    app.command("export")(export_cmd.export)

    app.add_typer(data_cmd.data_app, name="data")
    from segcli.cli import bench_cmd

    app.command("bench")(bench_cmd.bench)
    from segcli.cli import train_cmd

    app.command("train")(train_cmd.train)
    from segcli.cli import convert_cmd, synth_cmd

    data_cmd.data_app.command("synth")(synth_cmd.synth)
    data_cmd.data_app.command("convert")(convert_cmd.convert)

    from segcli.cli import predict_cmd

    app.command("predict")(predict_cmd.predict)
    from segcli.cli import eval_cmd

    app.command("eval")(eval_cmd.eval_command)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
