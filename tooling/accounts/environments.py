"""`deployments/environments.yaml`: which AWS account and regions each environment lives in, declared once.

Bootstrap reads it to know which accounts and regions to prepare and where images replicate to; plan and
deploy read it to refuse credentials of the wrong account and regions an environment may not use; the
workflows read role ARNs and the CI registry from it (`deployctl environments --github-output`). Its JSON
Schema (`deployments/environments.schema.json`) is generated from these models, like the spec's.

A repository without the file still plans and deploys with whatever credentials it has (the account is
then whatever they reach); bootstrap and the workflows need it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tooling import spec
from tooling.diagnostics import Diagnostic, Location
from tooling.source import FieldPath, Source, SourceError, load_yaml

FILE = "environments.yaml"
SCHEMA_FILE = "environments.schema.json"
SCHEMA_ID = "https://deployctl.dev/schemas/environments-v1.json"
ROLE_PATH = "/deployctl/"
# Every GitHub Actions job that assumes a role, and the workflow step it serves.
ROLES = ("plan", "deploy", "smoke", "rotation", "drift")

AccountId = Annotated[
    str,
    Field(
        pattern=r"^\d{12}$",
        description="The 12-digit AWS account id (quoted, so YAML keeps leading zeros).",
        examples=["123456789012"],
    ),
]
EnvironmentName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,15}$")]
Repository = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
        description="The GitHub repository whose workflows assume the roles, as owner/name.",
        examples=["acme/models"],
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ci(_Model):
    """The one registry CI pushes images to; ECR replicates them to every account and region in use."""

    account_id: AccountId
    region: spec.Region = Field(description="The CI registry's region (also the workflows' AWS_REGION).")


class Environment(_Model):
    account_id: AccountId
    regions: list[spec.Region] = Field(
        min_length=1,
        description="Regions this environment's deployments may run in; the first holds the account stack "
        "when the account has no other environment listed before it.",
    )
    required_reviewers: bool = Field(
        default=False,
        description="Its releases wait for required reviewers (in GitHub, those of the approval environment "
        "the workflows wait on first: `prod-approval` for prod; the environment of this name is limited to "
        "main). Its stacks get termination protection and `deploy --prune` deletes them only with --yes.",
    )
    oidc_provider_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com$",
        description="An existing GitHub OIDC provider to adopt instead of creating one (bootstrap also "
        "finds it by itself). Default: create it in the account stack.",
    )

    @model_validator(mode="after")
    def _unique_regions(self) -> Environment:
        seen: set[str] = set()
        for index, region in enumerate(self.regions):
            if region in seen:
                raise spec.fail("duplicate_region", f"'{region}' is listed twice", field=f"regions[{index}]")
            seen.add(region)
        return self


class Environments(_Model):
    """`deployments/environments.yaml`: the accounts, regions and approvals of every environment."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="deployctl environments")

    github_repository: Repository
    ci: Ci
    environments: dict[EnvironmentName, Environment] = Field(min_length=1)

    @model_validator(mode="after")
    def _no_name_extends_another(self) -> Environments:
        from tooling.repository import prefix_clash  # noqa: PLC0415

        for name in self.environments:
            if clash := prefix_clash(name, self.environments):
                raise spec.fail(
                    "environment_prefix",
                    f"'{name}' is '{clash}' followed by '-': {clash}'s roles are granted {clash}-* stacks "
                    f"and deployctl/{clash}/* secrets, which would include {name}'s",
                    hint=f"a name that does not start with '{clash}-' (for example "
                    f"'{name.replace('-', '', 1)}')",
                    field=f"environments.{name}",
                )
        return self

    @model_validator(mode="after")
    def _one_provider_per_account(self) -> Environments:
        adopted: dict[str, str] = {}
        for name, env in self.environments.items():
            if env.oidc_provider_arn is None:
                continue
            if env.oidc_provider_arn.split(":")[4] != env.account_id:
                raise spec.fail(
                    "provider_account",
                    "the OIDC provider is in another account than the environment",
                    hint=f"an ARN with iam::{env.account_id}:",
                    field=f"environments.{name}.oidc_provider_arn",
                )
            if adopted.setdefault(env.account_id, env.oidc_provider_arn) != env.oidc_provider_arn:
                raise spec.fail(
                    "provider_account",
                    "another environment of this account names a different OIDC provider",
                    field=f"environments.{name}.oidc_provider_arn",
                )
        return self

    # ------------------------------------------------------------------ derived views

    def accounts(self) -> dict[str, list[str]]:
        """Account id -> the environments living in it, in file order."""
        out: dict[str, list[str]] = {}
        for name, env in self.environments.items():
            out.setdefault(env.account_id, []).append(name)
        return out

    def regions_of(self, account_id: str) -> list[str]:
        """Every region any environment of the account may use, first-listed first."""
        regions: list[str] = []
        for env in self.environments.values():
            if env.account_id == account_id:
                regions += [r for r in env.regions if r not in regions]
        return regions

    def home_region(self, account_id: str) -> str:
        """Where the account stack is created (IAM is global; the stack has to live somewhere)."""
        return self.regions_of(account_id)[0]

    def provider_arn(self, account_id: str) -> str | None:
        return next(
            (e.oidc_provider_arn for e in self.environments.values()
             if e.account_id == account_id and e.oidc_provider_arn),
            None,
        )  # fmt: skip

    def destinations(self) -> list[tuple[str, str]]:
        """(account, region) pairs that run deployments and are not the CI registry itself."""
        pairs: list[tuple[str, str]] = []
        for env in self.environments.values():
            for region in env.regions:
                pair = (env.account_id, region)
                if pair != (self.ci.account_id, self.ci.region) and pair not in pairs:
                    pairs.append(pair)
        return pairs

    def role_arn(self, environment: str, role: str, partition: str = "aws") -> str:
        account = self.environments[environment].account_id
        return f"arn:{partition}:iam::{account}:role{ROLE_PATH}{role_name(role, environment)}"

    def push_role_arn(self, partition: str = "aws") -> str:
        return f"arn:{partition}:iam::{self.ci.account_id}:role{ROLE_PATH}{PUSH_ROLE}"


PUSH_ROLE = "deployctl-image-push"


def role_name(role: str, environment: str) -> str:
    return f"deployctl-{role}-{environment}"


# ---------------------------------------------------------------------- loading


class EnvironmentsError(Exception):
    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("; ".join(d.message for d in diagnostics))
        self.diagnostics = diagnostics


@dataclass(frozen=True)
class Loaded:
    config: Environments
    source: Source
    path: Path


def path_of(root: Path) -> Path:
    return root / "deployments" / FILE


def load(root: Path) -> Loaded | None:
    """The declared environments, None when the repository has no environments.yaml.

    Raises EnvironmentsError with every problem located at its file, line and field.
    """
    path = path_of(root)
    if not path.is_file():
        return None
    try:
        source = load_yaml(path)
    except SourceError as exc:
        raise EnvironmentsError(exc.diagnostics) from None
    try:
        config = Environments.model_validate(source.data)
    except ValidationError as exc:
        raise EnvironmentsError(
            [_diagnostic(source, path, error) for error in exc.errors(include_url=False)]
        ) from None
    return Loaded(config, source, path)


def require(root: Path) -> Loaded:
    loaded = load(root)
    if loaded is None:
        path = path_of(root)
        raise EnvironmentsError(
            [
                Diagnostic(
                    Location(path),
                    "",
                    "no deployments/environments.yaml: bootstrap and the workflows need the accounts of "
                    "each environment",
                    "ENV001",
                    hint="copy the example in the README's account set-up section",
                )
            ]
        )
    return loaded


def _diagnostic(source: Source, path: Path, error: dict[str, Any]) -> Diagnostic:
    from tooling import validation  # noqa: PLC0415 - the spec's error wording, reused

    where, missing, on_key = validation._data_path(source.data, error)
    kind = error["type"]
    if kind == "extra_forbidden":
        message, hint = f"unknown field '{where[-1]}'", _accepted(where)
    elif kind == "string_pattern_mismatch":
        message, hint = f"{error.get('input')!r} is not valid here", _examples(where)
    else:
        message, hint = validation._describe(error, where)
        if kind == "missing":
            hint = hint or _examples(where)
    loc = source.locate(where, key=on_key or missing or kind == "extra_forbidden") or Location(path)
    return Diagnostic(loc, validation.dotted(where), message, _CODES.get(kind, "ENV005"), hint=hint)


_CODES = {"missing": "ENV002", "extra_forbidden": "ENV003"}


def _model_for(path: FieldPath) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Environments
    for index, part in enumerate(path):
        if model is Environments and part == "environments":
            model = Environment if index + 1 < len(path) else None
            continue
        if model is Environment and index >= 1 and path[index - 1] == "environments":
            continue  # the environment's name
        if model is Environments and part == "ci":
            model = Ci
            continue
        return model
    return model


def _accepted(path: FieldPath) -> str:
    model = _model_for(path[:-1])
    return f"accepted: {', '.join(model.model_fields)}" if model else ""


def _examples(path: FieldPath) -> str:
    model = _model_for(path[:-1])
    name = path[-1] if path else ""
    if model is None or not isinstance(name, str) or name not in model.model_fields:
        return "an environment name: lowercase letters, digits and '-'" if "environments" in path else ""
    info = model.model_fields[name]
    examples = info.examples or [
        m.get("pattern") for m in (getattr(x, "__dict__", {}) for x in info.metadata) if m.get("pattern")
    ]
    text = info.description or ""
    if info.examples:
        text += f" e.g. {info.examples[0]}"
    return text.strip() or (f"matching {examples[0]}" if examples else "")


def placement_errors(config: Environments, files: list[Any]) -> list[Diagnostic]:
    """Deployments (repository.DeploymentFile) in an undeclared environment or a region it does not list,
    located at the deployment file's `region` (which may come from a _defaults.yaml)."""
    out = []
    for f in files:
        if f.spec is None:
            continue
        where = (f.source.locate(("region",)) if f.source else None) or Location(f.path)
        env = config.environments.get(f.environment)
        if env is None:
            declared = ", ".join(config.environments)
            out.append(
                Diagnostic(
                    Location(f.path),
                    "",
                    f"environment '{f.environment}' is not declared in deployments/environments.yaml",
                    "ENV010",
                    hint=f"declared: {declared}; add it with its account and regions",
                )
            )
        elif f.spec.region not in env.regions:
            out.append(
                Diagnostic(
                    where,
                    "region",
                    f"{f.environment} may not run in {f.spec.region} (deployments/environments.yaml)",
                    "ENV011",
                    hint=f"one of {', '.join(env.regions)}, or add {f.spec.region} to {f.environment}'s "
                    "regions and run `deployctl bootstrap` in its account and the CI account",
                    via=f.path if where.file != f.path else None,
                )
            )
    return out


# ---------------------------------------------------------------------- schema and outputs


def json_schema() -> dict[str, Any]:
    schema = Environments.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def all_outputs(config: Environments) -> dict[str, str]:
    """Every environment's role ARNs as `<environment>_<role>_role`, and the CI registry's values."""
    out = github_outputs(config, None)
    for environment in config.environments:
        for role in ROLES:
            out[f"{environment}_{role}_role"] = config.role_arn(environment, role)
    return out


def github_outputs(config: Environments, environment: str | None) -> dict[str, str]:
    """What a workflow job needs to assume its role: `name=value` lines for $GITHUB_OUTPUT."""
    out = {
        "ci_account": config.ci.account_id,
        "ci_region": config.ci.region,
        "push_role": config.push_role_arn(),
        "registry": f"{config.ci.account_id}.dkr.ecr.{config.ci.region}.amazonaws.com",
    }
    if environment is not None:
        env = config.environments[environment]
        out["account"] = env.account_id
        out["region"] = env.regions[0]
        out.update({f"{role}_role": config.role_arn(environment, role) for role in ROLES})
    return out
