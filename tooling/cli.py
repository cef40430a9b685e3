"""`deployctl`: the command line. Thin: each command parses options and calls the module owning the work."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from tooling import repository, schema
from tooling.diagnostics import dump_json, format_github, format_text

FORMATS = ("text", "json", "github")


class _Context:
    def __init__(self, root: Path | None):
        self.root = root.resolve() if root else repository.find_root()

    def load(self, paths: tuple[Path, ...]) -> repository.Deployments:
        return repository.load(self.root, paths)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="DEPLOYCTL_ROOT",
    help="Repository root (the folder holding deployments/). Default: found upwards from here.",
)
@click.version_option(package_name="deployctl")
@click.pass_context
def cli(ctx: click.Context, root: Path | None) -> None:
    """GitOps for LLM inference endpoints on AWS."""
    ctx.obj = _Context(root)


paths_argument = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))


@cli.command()
@paths_argument
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.pass_obj
def validate(obj: _Context, paths: tuple[Path, ...], fmt: str) -> None:
    """Check deployment files (default: all of deployments/). Exit 1 when any has an error."""
    result = obj.load(paths)
    if fmt == "json":
        click.echo(dump_json(result.diagnostics, len(result.files)))
    else:
        render = format_github if fmt == "github" else format_text
        for diagnostic in result.diagnostics:
            click.echo(render(diagnostic))
        valid = len(result.valid)
        click.echo(
            f"{len(result.files)} deployment file(s): {valid} valid, {len(result.files) - valid} invalid; "
            f"{len(result.errors)} error(s), {len(result.warnings)} warning(s)",
            err=fmt == "github",
        )
    sys.exit(1 if result.errors else 0)


@cli.command("list")
@paths_argument
@click.pass_obj
def list_(obj: _Context, paths: tuple[Path, ...]) -> None:
    """A table of deployments: where, on what, how they scale and how clients reach them."""
    result = obj.load(paths)
    table = Table(title="Deployments", title_justify="left")
    for column in ("Environment", "Name", "Engine", "Service", "Instance", "Scaling", "Endpoint", "Auth"):
        table.add_column(column, no_wrap=True)
    for f in result.files:
        if f.spec is None:
            errors = sum(1 for d in f.diagnostics if d.severity == "error")
            table.add_row(
                f.environment, f.name, "[red]invalid[/]", f"[red]{errors} error(s)[/]", "", "", "", ""
            )
            continue
        s = f.spec
        compute = s.compute
        if compute.service == "ecs-fargate":
            instance = f"{compute.cpu / 1024:g} vCPU / {compute.memory / 1024:g} GiB {compute.architecture}"
        else:
            instance = compute.instance_type + (" spot" if getattr(compute, "spot", False) else "")
        scaling = f"{s.scaling.min}–{s.scaling.max}"
        if s.scaling.schedules:
            scaling += f" +{len(s.scaling.schedules)} schedule(s)"
        endpoint = ("public" if s.network.public else "internal") + (
            " https" if s.network.certificate_arn else " http"
        )
        auth = f"keys, rotated {s.auth.rotation_days}d" if s.auth.api_keys else "[yellow]none[/]"
        table.add_row(
            f.environment, s.name, s.engine.type, compute.service, instance, scaling, endpoint, auth
        )
    _print(table)


@cli.command("render")
@paths_argument
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build"),
    show_default=True,
    help="Folder for build/<environment>/<name>.json.",
)
@click.option("--lint/--no-lint", default=True, show_default=True, help="Check each template with cfn-lint.")
@click.pass_obj
def render_(obj: _Context, paths: tuple[Path, ...], out: Path, lint: bool) -> None:
    """Render deployments to CloudFormation templates; exit 1 on invalid specs or lint findings."""
    from tooling import lint as linter  # noqa: PLC0415 - cfn-lint loads only when asked for
    from tooling import render  # noqa: PLC0415

    result = obj.load(paths)
    for diagnostic in result.diagnostics:
        click.echo(format_text(diagnostic))
    table = Table(title=f"Templates in {out}", title_justify="left")
    for column, justify in (("Stack", "left"), ("Resources", "right"), ("Bytes", "right"), ("Lint", "left")):
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    findings = 0
    for deployment in result.valid:
        rendered = render.render_deployment(deployment)
        path = render.write(rendered, out)
        problems = linter.lint(rendered.text, deployment.spec.region, path) if lint else []  # type: ignore[union-attr]
        for problem in problems:
            click.echo(format_text(problem))
        findings += len(problems)
        size = f"{rendered.inline_size:,}" + (
            " [yellow](> inline limit: via S3)[/]" if rendered.oversize else ""
        )
        status = (
            "skipped" if not lint else ("[green]clean[/]" if not problems else f"[red]{len(problems)}[/]")
        )
        table.add_row(deployment.stack_name, str(rendered.resources), size, status)
    _print(table)
    sys.exit(1 if result.errors or findings else 0)


def _print(table: Table) -> None:
    console = Console()
    # Logs and pipes get the whole table rather than rich's 80-column default.
    (console if console.is_terminal else Console(width=200)).print(table)


@cli.command("schema")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
def schema_(out: Path | None) -> None:
    """The JSON Schema of a deployment file, generated from the spec models."""
    text = schema.schema_text()
    if out:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)


@cli.command()
@click.option(
    "--readme", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Update in place."
)
@click.option("--check", is_flag=True, help="Exit 1 when the README's reference is out of date.")
def docs(readme: Path | None, check: bool) -> None:
    """The field reference of the spec, as Markdown (or refreshed between the README's markers)."""
    if readme is None:
        click.echo(schema.field_reference(), nl=False)
        return
    text = readme.read_text(encoding="utf-8")
    try:
        updated = schema.with_reference(text)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if check:
        if updated != text:
            raise click.ClickException(f"{readme} field reference is out of date: run `make schema`")
        return
    readme.write_text(updated, encoding="utf-8")
    click.echo(f"updated {readme}", err=True)


def main() -> None:
    """Entry point: never a traceback for the user, unless DEPLOYCTL_DEBUG asks for one."""
    try:
        cli.main(standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug of ours: say so in one line, keep the traceback for who asks
        if os.environ.get("DEPLOYCTL_DEBUG"):
            raise
        # The exception text may quote input, and input may hold a secret: name the failure, not its data.
        frame = exc.__traceback__
        while frame and frame.tb_next:
            frame = frame.tb_next
        where = f" at {Path(frame.tb_frame.f_code.co_filename).name}:{frame.tb_lineno}" if frame else ""
        click.echo(f"deployctl: internal error: {type(exc).__name__}{where}", err=True)
        click.echo("run again with DEPLOYCTL_DEBUG=1 for the traceback, and report it", err=True)
        sys.exit(70)
