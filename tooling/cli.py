"""`deployctl`: the command line. Thin: each command parses options and calls the module owning the work."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tooling import repository, schema
from tooling.diagnostics import dump_json, format_github, format_text

FORMATS = ("text", "json", "github")


class _Context:
    def __init__(self, root: Path | None):
        self.root = root.resolve() if root else repository.find_root()

    def load(self, paths: tuple[Path, ...]) -> repository.Deployments:
        return repository.load(self.root, paths)

    def check_paths(self, paths: tuple[Path, ...]) -> None:
        """A path that names nothing, or something outside deployments/, selects nothing: an error."""
        base = (self.root / repository.DEPLOYMENTS_DIR).resolve()
        for path in paths:
            if not path.exists() and not path.is_symlink():
                raise click.ClickException(f"{path}: no such file or folder")
            if not path.resolve().is_relative_to(base):
                raise click.ClickException(
                    f"{path}: not under {base} (deployment files live in deployments/<environment>/)"
                )

    def environment(self, name: str | None) -> None:
        if name is None:
            return
        base = self.root / repository.DEPLOYMENTS_DIR
        known = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
        if name not in known:
            raise click.ClickException(
                f"--environment {name}: no such environment; environments: {', '.join(known) or 'none'}"
            )

    def repository(self) -> str:
        from tooling import ownership  # noqa: PLC0415

        try:
            return ownership.repository_of(self.root)
        except ownership.NoIdentity as exc:
            raise click.ClickException(str(exc)) from None


def _cache_note(store: object) -> None:
    unwritable = getattr(store, "unwritable", None)
    if unwritable:
        click.echo(f"warning: cache not writable ({unwritable}); ran without caching", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--root",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
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
@click.option("--fail-over-budget", is_flag=True, help="An estimate over budget.monthly_usd is an error.")
@click.pass_obj
def validate(obj: _Context, paths: tuple[Path, ...], fmt: str, fail_over_budget: bool) -> None:
    """Check deployment files (default: all of deployments/). Exit 1 when any has an error."""
    result = obj.load(paths)
    if fail_over_budget:
        result = _budget_errors(result)
    result = _with_environment_errors(obj, result)
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


def _with_environment_errors(obj: _Context, result: repository.Deployments) -> repository.Deployments:
    """environments.yaml's own errors, located like a deployment file's."""
    import dataclasses  # noqa: PLC0415

    from tooling.accounts import environments  # noqa: PLC0415

    try:
        loaded = environments.load(obj.root)
    except environments.EnvironmentsError as exc:
        return dataclasses.replace(result, diagnostics=[*result.diagnostics, *exc.diagnostics])
    if loaded is None:
        return result
    extra = environments.placement_errors(loaded.config, result.files)
    return dataclasses.replace(result, diagnostics=[*result.diagnostics, *extra])


def _budget_errors(result: repository.Deployments) -> repository.Deployments:
    """The same result with over-budget warnings promoted to errors (for CI)."""
    import dataclasses  # noqa: PLC0415

    from tooling.diagnostics import Severity  # noqa: PLC0415
    from tooling.validation import OVER_BUDGET  # noqa: PLC0415

    promoted = [
        dataclasses.replace(d, severity=Severity.ERROR) if d.code == OVER_BUDGET else d
        for d in result.diagnostics
    ]
    return dataclasses.replace(result, diagnostics=promoted)


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
            instance = getattr(compute, "label", None) or compute.instance_type
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
    import json  # noqa: PLC0415

    from templates.stack import INLINE_LIMIT, inline_size  # noqa: PLC0415
    from tooling import planning, render  # noqa: PLC0415
    from tooling.cache import DEFAULT_DIR, Cache  # noqa: PLC0415

    obj.check_paths(paths)
    # The same cached, parallel machinery as plans: an unchanged deployment costs a hash.
    store = Cache(obj.root / DEFAULT_DIR)
    head = _head(obj, store, lint=lint)
    _cache_note(store)
    chosen = planning.chosen_stacks(head, obj.root, paths)
    for problem in head.problems:
        click.echo(problem)
    table = Table(title=f"Templates in {out}", title_justify="left")
    for column, justify in (("Stack", "left"), ("Resources", "right"), ("Bytes", "right"), ("Lint", "left")):
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    failed = bool(head.problems)
    for name in sorted(chosen):
        state = head.stacks[name]
        for line in (*state.errors, *state.warnings):
            click.echo(line)
        failed |= bool(state.errors)
        if state.text is None:
            continue
        render.write_text(state.text, out / state.environment / f"{state.name}.json")
        size = inline_size(state.text)
        shown = f"{size:,}" + (" [yellow](> inline limit: via S3)[/]" if size > INLINE_LIMIT else "")
        status = (
            "skipped"
            if not lint
            else ("[green]clean[/]" if not state.errors else f"[red]{len(state.errors)}[/]")
        )
        table.add_row(name, str(len(json.loads(state.text)["Resources"])), shown, status)
    _print(table)
    sys.exit(1 if failed else 0)


def _head(obj: _Context, store: object, *, lint: bool = True):
    """The checkout rendered by its own code; its code failing to run is an error, not a traceback."""
    from tooling import gitbase, planning  # noqa: PLC0415

    try:
        return planning.head_snapshot(obj.root, store, lint=lint)  # type: ignore[arg-type]
    except gitbase.GitError as exc:
        raise click.ClickException(str(exc)) from None


def _print(table: object) -> None:
    console = Console()
    # Logs and pipes get the whole table rather than rich's 80-column default.
    (console if console.is_terminal else Console(width=200)).print(table)


def _has_aws() -> bool:
    """Whether AWS is reachable for a change-set plan, judged without any network call."""
    keys = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE")
    if any(os.environ.get(k) for k in keys):
        return True
    home = Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", Path.home() / ".aws" / "credentials"))
    return home.is_file()


@cli.command()
@paths_argument
@click.option(
    "--against",
    default="auto",
    show_default=True,
    help="aws (change sets), git:REF (offline diff with REF rendered by its own code), or auto.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True
)
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 when nothing changes, 2 on changes, 1 on errors."
)
@click.option("--no-cache", is_flag=True, help="Render and lint everything again.")
@click.option(
    "--image-tag",
    multiple=True,
    help="Image tag (aws plans): TAG, gateway=TAG or vllm=<version>-<commit>. Default: the checkout's "
    "where a stack has none that fits.",
)
@click.option("--fail-over-budget", is_flag=True, help="A stack estimated over its budget fails the plan.")
@click.option(
    "--markdown-limit",
    type=click.IntRange(1000, 65_536),
    default=65_536,
    show_default=True,
    help="Cut the markdown to this many bytes (sections whole, every summary line kept).",
)
@click.pass_obj
def plan(
    obj: _Context,
    paths: tuple[Path, ...],
    against: str,
    fmt: str,
    detailed_exitcode: bool,
    no_cache: bool,
    image_tag: tuple[str, ...],
    fail_over_budget: bool,
    markdown_limit: int,
) -> None:
    """What applying the working tree would change, stack by stack (make plan runs this)."""
    from tooling import gitbase, plan_output, planning  # noqa: PLC0415
    from tooling.cache import DEFAULT_DIR, Cache  # noqa: PLC0415

    obj.check_paths(paths)
    store = Cache(None if no_cache else obj.root / DEFAULT_DIR)
    auto = against == "auto"
    if auto:
        against = "aws" if _has_aws() else "git:"
    if against == "aws":
        _environments(obj)  # its errors, located, before any AWS call
    tags = _image_tags(image_tag)
    identity = _identity_or_empty(obj)
    try:
        if against == "aws":
            result = planning.plan_against_aws(
                obj.root, store, image_tag=tags, paths=paths, repository=identity
            )
        elif against.startswith("git:"):
            head = _head(obj, store)
            try:
                result = planning.plan_against_git(
                    obj.root, against.removeprefix("git:") or None, store, head=head,
                    repository=identity, image_tags=tags or None,
                )  # fmt: skip
            except gitbase.NotARepository as exc:
                if not auto:
                    raise
                # Not a git checkout (a tarball, a fresh copy): everything is new, and the plan says so.
                result = planning.offline_all(head, repository=identity, image_tags=tags or None)
                result.against = f"nothing deployed (no git history: {exc})"
        else:
            raise click.BadParameter("use aws, git:REF or auto", param_hint="--against")
    except gitbase.GitError as exc:
        raise click.ClickException(f"git: {exc}") from None
    _cache_note(store)
    result = planning.select(result, obj.root, paths)
    from tooling import quotas  # noqa: PLC0415

    if against == "aws":
        result.quotas = quotas.for_plan(result, obj.root)
    else:
        result.quotas = quotas.Report.not_checked(quotas.OFFLINE_NOTE)
    if fmt == "json":
        click.echo(plan_output.to_json(result))
    elif fmt == "markdown":
        click.echo(plan_output.markdown(result, limit=markdown_limit), nl=False)
    else:
        console = Console() if Console().is_terminal else Console(width=200)
        plan_output.print_text(result, console)
    if result.failed or (fail_over_budget and any(s.over_budget for s in result.stacks)):
        sys.exit(1)
    sys.exit(2 if detailed_exitcode and result.changed else 0)


@cli.command("plan-comment")
@click.argument("plans", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--environment",
    "-e",
    "environments",
    multiple=True,
    required=True,
    help="An environment the comment must cover (repeat); one without PLANS/<env>.md is reported missing.",
)
@click.option(
    "--limit", type=click.IntRange(1000, 65_536), default=65_536, show_default=True, help="Bytes at most."
)
def plan_comment(plans: Path, environments: tuple[str, ...], limit: int) -> None:
    """The pull-request comment from one markdown plan per environment (`plan --format markdown`)."""
    from tooling import plan_output  # noqa: PLC0415

    found = {p.stem: p for p in plans.rglob("*.md")} if plans.is_dir() else {}
    names = list(dict.fromkeys([*environments, *sorted(set(found) - set(environments))]))
    texts = {n: found[n].read_text(encoding="utf-8") if n in found else None for n in names}
    click.echo(plan_output.collect(texts, limit=limit), nl=False)


@cli.command("cost")
@paths_argument
@click.option(
    "--format", "fmt", type=click.Choice(("text", "markdown", "json")), default="text", show_default=True
)
@click.option(
    "--fail-over-budget", is_flag=True, help="Exit 1 when an estimate at minimum scale is over budget."
)
@click.pass_obj
def cost_(obj: _Context, paths: tuple[Path, ...], fmt: str, fail_over_budget: bool) -> None:
    """Monthly cost per deployment (minimum, scheduled, maximum scale) and totals per environment."""
    import datetime as dt  # noqa: PLC0415
    import json  # noqa: PLC0415

    from tooling import cost  # noqa: PLC0415

    result = obj.load(paths)
    for diagnostic in result.errors:
        click.echo(format_text(diagnostic), err=True)
    estimates = cost.estimate_all(result)
    today = dt.datetime.now(dt.UTC).date()
    if fmt == "json":
        data = cost.to_json(estimates)
        data["price_table"]["age_days"] = cost.price_age_days(today)
        click.echo(json.dumps(data, indent=2))
    elif fmt == "markdown":
        click.echo(cost.to_markdown(estimates, today), nl=False)
    else:
        _print(cost.to_text(estimates, today))
    over = [(e, m) for e in estimates if (m := cost.over_budget(e))]
    for estimate, message in over:
        click.echo(f"{estimate.stack_name}: {message}", err=True)
    sys.exit(1 if (fail_over_budget and over) or result.errors else 0)


@cli.group("prices")
def prices_() -> None:
    """The price table the estimates read (tooling/data/prices.yaml)."""


@prices_.command("refresh")
@click.option(
    "--from-recorded",
    "recorded",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Replay recorded Price List responses from this folder instead of calling AWS.",
)
@click.option(
    "--region",
    "regions",
    multiple=True,
    help="Only these regions (repeatable). Default: every commercial region (or every recorded one).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("tooling/data/prices.yaml"),
    show_default=True,
    help="Where the table is written.",
)
@click.option("--as-of", "as_of", help="The table's as_of date (YYYY-MM-DD). Default: today (UTC).")
@click.option(
    "--changed-exit-code",
    is_flag=True,
    help="Exit 2 when a price, source or offer moved (the workflow's PR).",
)
def prices_refresh(
    recorded: Path | None, regions: tuple[str, ...], out: Path, as_of: str | None, changed_exit_code: bool
) -> None:
    """Read every price from the AWS Price List Query API and write the table.

    Needs credentials allowed pricing:GetProducts (none with --from-recorded). A query that does not
    match exactly one non-zero price stops the refresh and nothing is written.
    """
    import datetime as dt  # noqa: PLC0415

    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from tooling.cost import pricelist  # noqa: PLC0415

    sections = None
    if recorded:
        client = pricelist.RecordedPricing(recorded)
        sections = client.sections()
        chosen = list(regions) or client.regions()
        provenance = client.provenance()
        date = client.as_of()
    else:
        client = pricelist.aws_client()
        chosen = list(regions) or pricelist.commercial_regions()
        provenance = "read live from the AWS Price List Query API"
        date = dt.datetime.now(dt.UTC).date()
    try:
        if as_of:
            date = dt.date.fromisoformat(as_of)
        table = pricelist.refresh(client, chosen, sections)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--as-of") from None
    except pricelist.RefreshError as exc:
        click.echo(f"prices refresh failed, nothing written: {exc}", err=True)
        sys.exit(1)
    except (BotoCoreError, ClientError) as exc:
        click.echo(f"prices refresh failed, nothing written: the Price List API said: {exc}", err=True)
        sys.exit(1)
    old = out.read_text(encoding="utf-8") if out.exists() else None
    text = pricelist.render(table, as_of=date, provenance=provenance)
    moved = pricelist.prices_moved(old, text)
    pricelist.write(out, text)
    priced = sum(len(r.ec2) + len(r.sagemaker) + len(r.services) for r in table.values())
    click.echo(
        f"{out}: {priced} prices in {len(table)} regions, as of {date}; "
        + ("moved" if moved else "unchanged")
    )
    sys.exit(2 if changed_exit_code and moved else 0)


def _identity_or_empty(obj: _Context) -> str:
    """The repository for a plan's tags hash; a plan without one still plans (and says so)."""
    from tooling import ownership  # noqa: PLC0415

    try:
        return ownership.repository_of(obj.root)
    except ownership.NoIdentity:
        return ""


def _image_tags(values: tuple[str, ...]) -> dict[str, str]:
    from tooling.changesets import image_tags  # noqa: PLC0415

    try:
        return image_tags(values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--image-tag") from None


def _recorded_tags(path: Path | None) -> dict[str, dict[str, str]]:
    import json  # noqa: PLC0415

    if path is None:
        return {}
    try:
        stacks = json.loads(path.read_text(encoding="utf-8"))["stacks"]
        return {
            s["stack_name"]: {k: v for k, v in s["parameters"].items() if k.endswith("ImageTag")}
            for s in stacks
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise click.BadParameter(f"{path}: not `deployctl status --format json` output ({exc})") from None


def _select_states(
    obj: _Context, paths: tuple[Path, ...], environment: str | None, changed_since: str | None
):
    from tooling import gitbase, planning  # noqa: PLC0415
    from tooling.cache import DEFAULT_DIR, Cache  # noqa: PLC0415

    obj.check_paths(paths)
    obj.environment(environment)
    store = Cache(obj.root / DEFAULT_DIR)
    head = _head(obj, store)
    _cache_note(store)
    names = set(head.stacks)
    if paths:
        names &= planning.chosen_stacks(head, obj.root, paths)
    if environment:
        names = {n for n in names if head.stacks[n].environment == environment}
    base_regions: set[str] = set()
    if changed_since:
        try:
            diff = planning.plan_against_git(obj.root, changed_since, store, head=head)
        except gitbase.GitError as exc:
            raise click.ClickException(f"git: {exc}") from None
        names &= {s.stack_name for s in diff.stacks if s.action != "no-change"}
        # Where the base revision had stacks: a deployment that left a region is found there.
        base_regions = {s.region for s in diff.stacks if s.region}
    return head, [head.stacks[n] for n in sorted(names)], base_regions


def _stack_waits(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--timeout` and `--image-wait`, the same for `deploy` and `release`."""
    command = click.option(
        "--image-wait",
        default=900,
        show_default=True,
        type=click.IntRange(0, 3600),
        help="Seconds to wait for a new image to replicate into a stack's region before failing that stack.",
    )(command)
    return click.option(
        "--timeout", default=3600, show_default=True, type=int, help="Seconds to wait for each stack."
    )(command)


@cli.command()
@paths_argument
@click.option("--environment", "-e", help="Only this environment's deployments.")
@click.option(
    "--changed-since", metavar="REF", help="Only deployments whose spec or template changed since REF."
)
@click.option("--max-parallel", default=4, show_default=True, type=click.IntRange(1, 32))
@click.option(
    "--prune",
    is_flag=True,
    help="Delete this repository's stacks (of the environments deployed) whose deployment file was removed.",
)
@click.option(
    "--yes",
    is_flag=True,
    help="Prod: allow pruning (termination protection is lifted) and recreating a failed stack.",
)
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The reviewed `plan --format json`: refuse if what would be applied differs from it.",
)
@click.option(
    "--allow-revert", is_flag=True, help="Allow deploying a commit that is not a descendant of the stack's."
)
@click.option(
    "--image-tag",
    multiple=True,
    help="Image tag to deploy: TAG (every image), gateway=TAG or vllm=<version>-<commit>. Default: keep "
    "the deployed one while it fits (same engine.version), else the checkout's (`deployctl images`).",
)
@click.option(
    "--image-tags-from",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Per-stack tags from `deployctl status --format json` (a rollback to what ran before).",
)
@click.option(
    "--checkout-images",
    is_flag=True,
    help="Every stack runs the images this checkout names (the tags `deployctl images` lists), not only "
    "new stacks and new engine versions: after CI built new images.",
)
@_stack_waits
@click.option(
    "--ignore-quotas",
    is_flag=True,
    help="Deploy even when the deployments at their maximum scale would exceed a quota.",
)
@click.pass_obj
def deploy(
    obj: _Context,
    paths: tuple[Path, ...],
    environment: str | None,
    changed_since: str | None,
    max_parallel: int,
    prune: bool,
    yes: bool,
    image_tag: tuple[str, ...],
    image_tags_from: Path | None,
    checkout_images: bool,
    timeout: int,
    image_wait: int,
    plan_file: Path | None,
    allow_revert: bool,
    ignore_quotas: bool,
) -> None:
    """Deploy through change sets, in parallel; exit 1 when any stack failed or was refused.

    Before any change, the account's quotas are read and compared with what every deployment would
    need at its maximum scale: a deploy that would exceed one is refused unless --ignore-quotas.

    Every stack is tagged with this repository (the checkout's `origin` remote, else
    $GITHUB_REPOSITORY), its environment, its file and the commit deployed."""
    import threading  # noqa: PLC0415

    from tooling import deploy as engine  # noqa: PLC0415
    from tooling import gitbase, ownership, planning, reviewed  # noqa: PLC0415

    if checkout_images and (image_tag or image_tags_from):
        raise click.BadParameter(
            "give the tags (--image-tag, --image-tags-from) or --checkout-images, not both"
        )
    head, states, base_regions = _select_states(obj, paths, environment, changed_since)
    identity = obj.repository()
    console = Console() if Console().is_terminal else Console(width=200)
    invalid = [s for s in states if not s.valid]
    for state in invalid:
        for error in state.errors:
            click.echo(error)
    lock = threading.Lock()

    def on_event(stack: str, line: str) -> None:
        with lock:
            console.print(f"[dim]{stack}[/] {escape(line)}", highlight=False)

    cancel = threading.Event()
    options = engine.Options(
        image_tags=_image_tags(image_tag),
        stack_image_tags=_recorded_tags(image_tags_from),
        timeout=timeout,
        max_parallel=max_parallel,
        on_event=on_event,
        environments=_environments(obj),
        image_wait=image_wait,
        repository=identity,
        commit=gitbase.head_commit(obj.root) or "",
        root=obj.root,
        regions={s.region for s in head.stacks.values() if s.region}
        | base_regions
        | ownership.default_regions(),
        yes=yes,
        allow_revert=allow_revert,
        default_image_tags=planning.checkout_tags(obj.root, head),
    )
    if checkout_images:
        options.stack_image_tags = {name: dict(tags) for name, tags in options.default_image_tags.items()}
    if plan_file is not None:
        try:
            plan_data = reviewed.load(plan_file)
        except reviewed.Unreadable as exc:
            raise click.ClickException(str(exc)) from None
        refused = reviewed.refusals(
            plan_data, [s for s in states if s.valid], repository=identity,
            image_tags=options.image_tags, stack_image_tags=options.stack_image_tags,
            default_image_tags=options.default_image_tags,
        )  # fmt: skip
        if refused:
            for line in refused:
                click.echo(f"refused: {line}", err=True)
            raise click.ClickException(
                f"{len(refused)} stack(s) differ from the reviewed plan {plan_file}; nothing deployed"
            )
        options.reviewed_deletions = reviewed.deletions(plan_data)
    _quota_preflight(obj, [s.stack_name for s in states if s.valid], console, ignore=ignore_quotas)
    results: list[engine.Result] = []
    try:
        valid = [s for s in states if s.valid]
        if console.is_terminal and valid:
            # A spinner on a terminal; CI logs get the plain event lines alone.
            with console.status(f"deploying {len(valid)} stack(s), {max_parallel} at a time…"):
                results = engine.deploy_all(valid, options, cancel)
        else:
            results = engine.deploy_all(valid, options, cancel)
        if prune:
            envs = {environment} if environment else ({s.environment for s in states} if paths else None)

            def listed(lines: list[str]) -> None:
                click.echo(f"prune: {len(lines)} stack(s) of {identity} to delete" + (":" if lines else ""))
                for line in lines:
                    click.echo(f"  - {line}")

            results += engine.prune(head, envs, options=options, cancel=cancel, on_list=listed)
    except KeyboardInterrupt:
        cancel.set()
        click.echo("interrupted: change sets not yet executed are being deleted", err=True)
        sys.exit(130)
    results += [engine.Result(s.stack_name, "invalid", reasons=s.errors) for s in invalid]
    if any(r.outcome in ("created", "updated") for r in results):
        # Budgets read $0 until the tag they filter on is active; AWS accepts it only once it has
        # appeared in billing data, so each deploy tries again until it is (tooling/accounts/billing.py).
        from tooling import aws  # noqa: PLC0415
        from tooling.accounts import billing  # noqa: PLC0415

        console.print(billing.activate(aws.client("ce", billing.REGION)).message, highlight=False)
    table = Table(title="Deploy", title_justify="left")
    for column in ("Stack", "Result", "Seconds", "Endpoint"):
        table.add_column(column, no_wrap=True)
    for r in sorted(results, key=lambda r: r.stack_name):
        color = "red" if r.outcome in engine.FAILED else "green"
        table.add_row(r.stack_name, f"[{color}]{r.outcome}[/]", f"{r.seconds:.0f}", r.endpoint)
    console.print(table)
    for r in results:
        for reason in r.reasons:
            console.print(f"[red]{r.stack_name}[/]: {escape(reason)}", highlight=False)
    sys.exit(1 if any(r.outcome in engine.FAILED for r in results) else 0)


def _quota_preflight(obj: _Context, stack_names: list[str], console: Console, *, ignore: bool) -> None:
    """Quotas at the deployments' maximum scale; exceeded ones refuse the deploy, nothing changed."""
    from tooling import quotas  # noqa: PLC0415

    if not stack_names:
        return
    report = quotas.for_deploy(stack_names, obj.root)
    for level, line in report.lines():
        style = {"error": "red", "warning": "yellow"}.get(level, "dim")
        console.print(
            f"[{style}]{'quota: ' if level == 'error' else ''}{escape(line)}[/]",
            highlight=False,
            soft_wrap=True,
        )
    if report.exceeded and not ignore:
        raise click.ClickException(
            f"{len(report.exceeded)} quota(s) would be exceeded at maximum scale; nothing deployed "
            "(request more, or deploy with --ignore-quotas)"
        )
    if report.exceeded:
        click.echo(f"warning: deploying past {len(report.exceeded)} quota(s) (--ignore-quotas)", err=True)


def _environments(obj: _Context, *, required: bool = False):
    """deployments/environments.yaml, or its located errors and exit 1."""
    from tooling.accounts import environments  # noqa: PLC0415

    try:
        loaded = environments.require(obj.root) if required else environments.load(obj.root)
    except environments.EnvironmentsError as exc:
        for diagnostic in exc.diagnostics:
            click.echo(format_text(diagnostic), err=True)
        sys.exit(1)
    return loaded.config if loaded else None


def _regions_by_environment(obj: _Context) -> dict[str, set[str]]:
    regions: dict[str, set[str]] = {}
    for f in obj.load(()).valid:
        if f.spec is not None:
            regions.setdefault(f.environment, set()).add(f.spec.region)
    return regions


@cli.command()
@click.option("--timeout", default=1800, show_default=True, type=int, help="Seconds to wait for each stack.")
@click.pass_obj
def bootstrap(obj: _Context, timeout: int) -> None:
    """Prepare the account these credentials reach: run once per account, again whenever regions change.

    Reads deployments/environments.yaml; creates or updates the regional stack of every region the
    account's deployments use, the account stack (roles, OIDC provider), ECR replication and the
    cost-allocation tag. Idempotent: run it again after any failure.
    """
    from tooling.accounts import bootstrap as steps  # noqa: PLC0415

    config = _environments(obj, required=True)
    try:
        report = steps.run(
            config,
            _regions_by_environment(obj),
            on_event=lambda line: click.echo(f"  {line}"),
            timeout=timeout,
        )
    except steps.BootstrapError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"account {report.account}:")
    for line in report.lines:
        click.echo(f"  {line}")
    sys.exit(1 if report.failed else 0)


@cli.command("environments")
@click.option("--environment", "-e", help="Add this environment's account, region and role ARNs.")
@click.option("--all", "every", is_flag=True, help="Every environment's role ARNs, as <env>_<role>_role.")
@click.option("--github-output", is_flag=True, help="name=value lines, for $GITHUB_OUTPUT.")
@click.pass_obj
def environments_(obj: _Context, environment: str | None, every: bool, github_output: bool) -> None:
    """Accounts, regions and role ARNs from deployments/environments.yaml (the workflows read these)."""
    import json  # noqa: PLC0415

    from tooling.accounts import environments  # noqa: PLC0415

    config = _environments(obj, required=True)
    if environment is not None and environment not in config.environments:
        raise click.BadParameter(
            f"'{environment}' is not in environments.yaml ({', '.join(config.environments)})",
            param_hint="--environment",
        )
    values = environments.all_outputs(config) if every else environments.github_outputs(config, environment)
    if github_output:
        for key, value in values.items():
            click.echo(f"{key}={value}")
        return
    click.echo(json.dumps(values, indent=2))


@cli.command()
@click.option(
    "--region", "regions", multiple=True, help="Region(s); default: every region the deployments use."
)
@click.option("--environment", "-e", help="Only this environment's stacks.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def status(obj: _Context, regions: tuple[str, ...], environment: str | None, fmt: str) -> None:
    """Our stacks: state, image tags, endpoint and dashboard URLs (JSON: what `deploy --image-tags-from`
    reads)."""
    import json  # noqa: PLC0415

    from templates.dashboard import OUTPUT as DASHBOARD_OUTPUT  # noqa: PLC0415
    from tooling import changesets  # noqa: PLC0415
    from tooling import cloudformation as cf  # noqa: PLC0415

    if not regions:
        regions = tuple(sorted({f.spec.region for f in obj.load(()).valid if f.spec}))
    table = Table(title="Stacks", title_justify="left")
    for column in ("Stack", "Region", "Status", "Image", "Endpoint", "Updated"):
        table.add_column(column, no_wrap=True)
    records = []
    for region in regions:
        for stack in sorted(changesets.managed_stacks(region), key=lambda s: s["StackName"]):
            if environment and cf.tags_of(stack).get("deployctl:environment") != environment:
                continue
            params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
            outputs = cf.outputs_of(stack)
            records.append(
                {
                    "stack_name": stack["StackName"],
                    "region": region,
                    "status": stack["StackStatus"],
                    "parameters": params,
                    "endpoint": outputs.get("EndpointUrl", ""),
                    # Stacks deployed before the dashboard have no such output until their next deploy.
                    "dashboard": outputs.get(DASHBOARD_OUTPUT, ""),
                }
            )
            image = params.get("VllmImageTag") or params.get("GatewayImageTag", "")
            updated = stack.get("LastUpdatedTime") or stack.get("CreationTime")
            table.add_row(
                stack["StackName"],
                region,
                stack["StackStatus"],
                image[:12],
                cf.outputs_of(stack).get("EndpointUrl", ""),
                str(updated)[:19] if updated else "",
            )
    if fmt == "json":
        click.echo(json.dumps({"stacks": records}, indent=2))
        return
    _print(table)
    # After the table, whole: a console URL is too long for a column and is useless cut short.
    dashboards = [(r["stack_name"], r["dashboard"]) for r in records if r["dashboard"]]
    if dashboards:
        click.echo("Dashboards:")
        width = max(len(name) for name, _ in dashboards)
        for name, url in dashboards:
            click.echo(f"  {name:<{width}}  {url}")


@cli.command()
@click.option(
    "--since", required=True, metavar="REF", help="The commit to compare with (e.g. the last deploy)."
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def changed(obj: _Context, since: str, fmt: str) -> None:
    """Deployments whose spec or template changed since REF, removed ones, and images to rebuild."""
    import json  # noqa: PLC0415

    from tooling import changes, gitbase  # noqa: PLC0415
    from tooling.cache import DEFAULT_DIR, Cache  # noqa: PLC0415

    try:
        result = changes.changed(obj.root, since, Cache(obj.root / DEFAULT_DIR))
    except gitbase.GitError as exc:
        raise click.ClickException(f"git: {exc}") from None
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
        return
    for item in result["deployments"]:
        click.echo(f"changed {item['stack_name']}")
    for item in result["removed"]:
        click.echo(f"removed {item['stack_name']}")
    for image, rebuild in result["images"].items():
        if image == "vllm_versions":
            for version in rebuild:
                click.echo(f"image vllm {version}: new since {result['since'][:12]}")
            continue
        click.echo(f"image {image}: {'rebuild' if rebuild else 'unchanged'}")


@cli.command("images")
@click.option(
    "--missing",
    is_flag=True,
    help="Only images whose tag is not in the CI registry yet (ECR DescribeImages).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "github-matrix"]), default="text", show_default=True
)
@click.option(
    "--region", help="The CI registry's region. Default: ci.region of deployments/environments.yaml."
)
@click.pass_obj
def images_(obj: _Context, missing: bool, fmt: str, region: str | None) -> None:
    """The images the deployments need: the gateway once, vLLM once per engine.version in use.

    Tags come from the checkout (`<commit>`, `<vllm version>-<commit>`), so a re-run lists the same
    tags and --missing lists none once they are pushed. A vLLM base marked resolve (no digest recorded
    in tooling/data/vllm_images.yaml) is pinned by the build: resolve `base` to its index digest
    (`docker buildx imagetools inspect --format '{{json .Manifest}}' BASE`, its "digest"), pass
    VLLM_BASE_IMAGE=BASE@DIGEST, and record the digest (the image's org.opencontainers.image.base.name
    label carries it)."""
    import json  # noqa: PLC0415

    from tooling.release import images  # noqa: PLC0415

    result = obj.load(())
    if invalid := [f for f in result.files if not f.valid]:
        click.echo(
            f"warning: {len(invalid)} invalid deployment file(s) left out (deployctl validate)", err=True
        )
    try:
        found = images.builds(obj.root, [f.spec for f in result.valid])
    except images.NoImageCommit as exc:
        raise click.ClickException(str(exc)) from None
    if missing:
        from tooling.accounts import environments  # noqa: PLC0415
        from tooling.accounts import images as registry  # noqa: PLC0415

        loaded = environments.load(obj.root)
        where = region or (loaded.config.ci.region if loaded else None) or os.environ.get("AWS_REGION")
        if not where:
            raise click.ClickException("--missing needs the CI registry's region: --region, or ci.region")
        absent = set(registry.absent(where, [(b.repository, b.tag) for b in found]))
        found = [b for b in found if (b.repository, b.tag) in absent]
    if fmt == "github-matrix":
        click.echo(json.dumps(images.github_matrix(found), separators=(",", ":")))
    elif fmt == "json":
        click.echo(json.dumps({"images": [b.to_json() for b in found]}, indent=2))
    else:
        for b in found:
            base = ""
            if b.base:
                base = f" FROM {b.base['name']}" + (
                    f"@{b.base['digest']}" if b.base["digest"] else " (resolve)"
                )
            click.echo(f"{b.repository}:{b.tag} [{','.join(b.platforms)}]{base}")


def _live(
    obj: _Context, targets: tuple[str, ...], environment: str | None
) -> list[repository.DeploymentFile]:
    """Valid deployments named `<environment>/<name>`, or all of an environment."""
    result = obj.load(())
    chosen = [
        f for f in result.valid
        if f"{f.environment}/{f.name}" in targets or (environment and f.environment == environment)
    ]  # fmt: skip
    missing = set(targets) - {f"{f.environment}/{f.name}" for f in chosen}
    if missing:
        raise click.ClickException(f"no valid deployment named {', '.join(sorted(missing))}")
    if not chosen:
        raise click.ClickException("name deployments as <environment>/<name>, or give --environment")
    return chosen


@cli.command()
@click.argument("targets", nargs=-1, metavar="[ENVIRONMENT/NAME]...")
@click.option("--environment", "-e", help="Every deployment of this environment.")
@click.option("--url", help="The endpoint (default: the stack's EndpointUrl output).")
@click.option(
    "--key-from-secret", "key_from_secret", is_flag=True, help="Use the stack's API key (AWSCURRENT)."
)
@click.option("--key-env", metavar="VAR", help="Read the API key from this environment variable.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Write a JSON report here.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown"]), default="text", show_default=True)
@click.option(
    "--retries", default=1, show_default=True, type=click.IntRange(0, 5), help="SDK retries per call."
)
@click.pass_obj
def smoke(
    obj: _Context,
    targets: tuple[str, ...],
    environment: str | None,
    url: str | None,
    key_from_secret: bool,
    key_env: str | None,
    report: Path | None,
    fmt: str,
    retries: int,
) -> None:
    """Smoke-test live endpoints (internal ones from their stack's probe); exit 1 on any failure.

    Every deployment is tried, whatever the ones before it did; one whose stack does not exist yet
    (merged, not released) is reported as skipped, not failed.
    """
    import json  # noqa: PLC0415

    from tooling import smoke as checks  # noqa: PLC0415

    if key_from_secret and key_env:
        raise click.UsageError("choose one of --key-from-secret and --key-env")
    mode = "env" if key_env else "secret"
    reports: list[checks.Report] = []
    skipped: list[tuple[str, str]] = []
    for deployment in _live(obj, targets, environment):
        name = f"{deployment.environment}/{deployment.name}"
        try:
            reports.append(
                checks.check_deployment(deployment, key_mode=mode, key_env=key_env, url=url, retries=retries)
            )
        except checks.NotDeployed as exc:
            skipped.append((name, str(exc)))
        except checks.NotSmokeable as exc:
            reports.append(checks.failed_report(name, str(exc)))
        except Exception as exc:  # one stack's AWS error must not hide the others' results
            reports.append(checks.failed_report(name, f"{type(exc).__name__}: {str(exc)[:300]}"))
    if fmt == "markdown":
        click.echo(checks.to_markdown(reports, skipped), nl=False)
    else:
        table = Table(title="Smoke tests", title_justify="left")
        for column in ("Deployment", "Check", "Result", "Seconds", "First token", "Detail"):
            table.add_column(column, no_wrap=column != "Detail")
        for name, why in skipped:
            table.add_row(name, "", "[yellow]skipped[/]", "", "", escape(why))
        for r in reports:
            for c in r.checks:
                first = f"{c.first_token_seconds:.3f}" if c.first_token_seconds is not None else ""
                result = "[green]pass[/]" if c.ok else "[red]FAIL[/]"
                table.add_row(r.deployment, c.name, result, f"{c.seconds:.3f}", first, escape(c.detail))
        _print(table)
    failed = [r.deployment for r in reports if not r.ok]
    click.echo(
        f"{len(reports) - len(failed)} passed, {len(failed)} failed, {len(skipped)} skipped (not deployed)",
        err=True,
    )
    if report:
        # One entry per deployment, as before; a skipped one carries why and no verdict (ok: null).
        document = [r.to_json() for r in reports] + [
            {"deployment": n, "skipped": why, "ok": None, "checks": []} for n, why in skipped
        ]
        report.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    sys.exit(1 if failed else 0)


@cli.command("release")
@click.argument("environment", required=False)
@click.option(
    "--commit", metavar="SHA", help="The commit to release; must be the checkout's HEAD (default: HEAD)."
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--no-rollback", is_flag=True, help="On failure, leave the environment as the failure left it.")
@click.option(
    "--ignore-quotas", is_flag=True, help="Release even when a quota would be exceeded at maximum scale."
)
@click.option(
    "--summary",
    "summary_of",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Render this `release --format json` report as Markdown, and do nothing else.",
)
@click.option("--max-parallel", default=4, show_default=True, type=click.IntRange(1, 32))
@_stack_waits
@click.pass_obj
def release_(
    obj: _Context,
    environment: str | None,
    commit: str | None,
    fmt: str,
    no_rollback: bool,
    ignore_quotas: bool,
    summary_of: Path | None,
    max_parallel: int,
    timeout: int,
    image_wait: int,
) -> None:
    """Converge every stack of ENVIRONMENT on the checkout, smoke-test what changed, record the release.

    A failed deploy or smoke test restores the previous release's record exactly and exits 1; a commit
    that does not descend from the last release is "superseded" and changes nothing (exit 0). Events go
    to stderr; with --format json, stdout is the report alone."""
    import json  # noqa: PLC0415

    from tooling.release import summary  # noqa: PLC0415

    if summary_of is not None:
        text = summary_of.read_text(encoding="utf-8")
        if not text.strip():  # the release stopped before it could write a report: its log says why
            click.echo(summary.EMPTY)
            return
        try:
            report = json.loads(text)
            click.echo(summary.to_markdown(report), nl=False)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise click.BadParameter(f"{summary_of}: not a `release --format json` report ({exc})") from None
        return
    if environment is None:
        raise click.UsageError("name the ENVIRONMENT to release (or give --summary FILE)")
    import threading  # noqa: PLC0415

    from tooling.release import engine  # noqa: PLC0415

    if fmt == "text":
        obj.environment(environment)  # JSON callers get the engine's refusal as a report instead
    lock = threading.Lock()

    def on_event(stack: str, line: str) -> None:
        with lock:
            click.echo(f"{stack} {line}", err=True)

    inputs = engine.Inputs(
        obj.root, environment, commit=commit, rollback=not no_rollback, on_event=on_event,
        timeout=timeout, max_parallel=max_parallel, image_wait=image_wait, ignore_quotas=ignore_quotas,
    )  # fmt: skip
    try:
        report = engine.release(inputs)
    except KeyboardInterrupt:
        click.echo("interrupted: change sets not yet executed are being deleted; nothing recorded", err=True)
        sys.exit(130)
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        table = Table(
            title=f"Release of {environment} at {report.commit[:12]}: {report.outcome}", title_justify="left"
        )
        for column in ("Stack", "Deploy", "Smoke", "Rollback", "Endpoint"):
            table.add_column(column, no_wrap=True)
        for s in report.stacks:
            smoked = "" if s.smoke is None else ("pass" if s.smoke.get("ok") else "FAIL")
            table.add_row(s.stack_name, s.deploy, smoked, s.rollback, s.endpoint)
        _print(table)
        for step in report.steps:
            click.echo(f"{step.name}: {step.outcome}" + (f": {step.detail}" if step.detail else ""))
        for s in report.stacks:
            for reason in [*s.reasons, *s.rollback_reasons]:
                click.echo(f"{s.stack_name}: {reason}")
    sys.exit(0 if report.ok else 1)


@cli.command("usage")
@click.argument("target", metavar="ENVIRONMENT/NAME")
@click.option("--since", default="24h", show_default=True, help="How far back: 30m, 24h, 7d.")
@click.pass_obj
def usage_(obj: _Context, target: str, since: str) -> None:
    """Requests, tokens, errors and latency per client of one deployment (CloudWatch metrics)."""
    import datetime  # noqa: PLC0415

    from tooling import aws  # noqa: PLC0415
    from tooling import usage as report  # noqa: PLC0415

    try:
        span = report.parse_since(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    (deployment,) = _live(obj, (target,), None)
    assert deployment.spec is not None
    end = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    rows = report.usage(
        aws.client("cloudwatch", deployment.spec.region), deployment.stack_name, end - span, end
    )
    table = Table(title=f"Usage of {target} over the last {since}", title_justify="left")
    for column in ("Client", "Requests", "Errors", "Prompt tokens", "Completion tokens", "Latency avg ms",
                   "Latency max ms"):  # fmt: skip
        table.add_column(column, justify="left" if column == "Client" else "right")
    for row in rows:
        table.add_row(
            escape(row.client),
            f"{row.requests:.0f}",
            f"{row.errors:.0f}",
            f"{row.prompt_tokens:.0f}",
            f"{row.completion_tokens:.0f}",
            "" if row.latency_ms_average is None else f"{row.latency_ms_average:.1f}",
            "" if row.latency_ms_max is None else f"{row.latency_ms_max:.1f}",
        )
    if not rows:
        click.echo(f"no usage recorded for {deployment.stack_name} in the last {since}")
        return
    _print(table)


@cli.command("rotate-keys")
@paths_argument
@click.option("--environment", "-e", help="Every deployment of this environment.")
@click.option(
    "--due",
    is_flag=True,
    help="Only keys older than their auth.rotation_days (DescribeSecret's LastRotatedDate, else the "
    "secret's CreatedDate); the others are listed as not due.",
)
@click.option(
    "--timeout", default=600, show_default=True, type=int, help="Seconds to wait for each rotation."
)
@click.pass_obj
def rotate_keys(
    obj: _Context, paths: tuple[Path, ...], environment: str | None, due: bool, timeout: int
) -> None:
    """Rotate API keys now, then prove the new key and the previous one both work.

    A deployment whose stack does not exist yet is skipped (it has no key to rotate); a stack without
    its key outputs, a rotation still pending or a key refused fails the command (exit 1).
    """
    import datetime as dt  # noqa: PLC0415

    from tooling import aws, keys  # noqa: PLC0415
    from tooling import cloudformation as cf  # noqa: PLC0415
    from tooling import smoke as smoke_checks  # noqa: PLC0415

    chosen = [f for f in obj.load(paths).valid if f.spec and f.spec.auth.api_keys]
    if environment:
        chosen = [f for f in chosen if f.environment == environment]
    now = dt.datetime.now(dt.UTC)
    failed = False
    for deployment in chosen:
        spec = deployment.spec
        assert spec is not None
        stack = cf.describe(aws.client("cloudformation", spec.region), deployment.stack_name)
        if not smoke_checks.deployed(stack):
            click.echo(f"{deployment.stack_name}: skipped, not deployed yet")
            continue
        outputs = cf.outputs_of(stack)
        secret, url = outputs.get("ApiKeySecretArn"), outputs.get("EndpointUrl")
        if not secret or not url:
            click.echo(f"{deployment.stack_name}: no ApiKeySecretArn/EndpointUrl output; cannot rotate")
            failed = True
            continue
        try:
            if due:
                age = keys.age(secret, spec.region, spec.auth.rotation_days)
                if age.rotating:
                    # A rotation that did not finish leaves AWSPENDING on a version; another RotateSecret
                    # would run against it. Someone has to look (the rotation function's logs).
                    click.echo(f"{deployment.stack_name}: a rotation is pending (AWSPENDING); not rotated")
                    failed = True
                    continue
                if not age.due(now):
                    click.echo(
                        f"{deployment.stack_name}: not due (key from {age.since:%Y-%m-%d} by {age.source}, "
                        f"due {age.due_at:%Y-%m-%d} after {spec.auth.rotation_days}d)"
                    )
                    continue
            rotation = keys.rotate(secret, spec.region, timeout=timeout)
            new, old = keys.key(secret, spec.region), keys.key(secret, spec.region, "AWSPREVIOUS")
            verdict = {"new key": keys.works(url, new), "previous key": keys.works(url, old)}
        except Exception as exc:
            click.echo(f"{deployment.stack_name}: rotation failed: {type(exc).__name__}: {exc}")
            failed = True
            continue
        ok = all(verdict.values())
        failed |= not ok
        states = ", ".join(f"{k} {'accepted' if v else 'REFUSED'}" for k, v in verdict.items())
        click.echo(f"{deployment.stack_name}: rotated to version {rotation.current_version[:8]}; {states}")
    sys.exit(1 if failed else 0)


@cli.command()
@click.option("--environment", "-e", help="Only this environment's stacks.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown"]), default="text", show_default=True)
@click.pass_obj
def drift(obj: _Context, environment: str | None, fmt: str) -> None:
    """Detect drift on our stacks (changes made outside CloudFormation).

    Exit 0: every stack in sync; 2: drift found (and every detection finished); 1: a detection failed,
    so the report is incomplete, whatever else it found.
    """
    from tooling import changesets  # noqa: PLC0415
    from tooling import cloudformation as cf  # noqa: PLC0415
    from tooling import drift as detector  # noqa: PLC0415

    regions = sorted({f.spec.region for f in obj.load(()).valid if f.spec})
    results = []
    for region in regions:
        for stack in changesets.managed_stacks(region):
            if environment and cf.tags_of(stack).get("deployctl:environment") != environment:
                continue
            results.append(detector.detect(stack["StackName"], region))
    if fmt == "markdown":
        click.echo(detector.to_markdown(results), nl=False)
    else:
        table = Table(title="Drift", title_justify="left")
        for column in ("Stack", "Status", "Resource", "Change", "Properties"):
            table.add_column(column)
        for d in results:
            for logical, kind, status, paths in d.resources or [("", "", "", [])]:
                table.add_row(d.stack_name, d.status, f"{logical} {kind}".strip(), status, ", ".join(paths))
        _print(table)
    sys.exit(detector.exit_code(results))


@cli.command("schema")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option("--environments", "of_environments", is_flag=True, help="The schema of environments.yaml.")
def schema_(out: Path | None, of_environments: bool) -> None:
    """The JSON Schema of a deployment file (or of environments.yaml), generated from the models."""
    from tooling.accounts import environments  # noqa: PLC0415

    text = environments.schema_text() if of_environments else schema.schema_text()
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


def _terminated(signum: int, frame: object) -> None:
    # A cancelled CI job gets SIGTERM: unwind like Ctrl-C, so change sets and shells are cleaned up.
    raise KeyboardInterrupt


def main() -> None:
    """Entry point: never a traceback for the user, unless DEPLOYCTL_DEBUG asks for one."""
    import signal  # noqa: PLC0415

    signal.signal(signal.SIGTERM, _terminated)
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
