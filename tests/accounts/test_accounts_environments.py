"""deployments/environments.yaml: the model, its located errors, its generated schema, what it derives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tooling.accounts import bootstrap, environments
from tooling.cli import cli

ROOT = Path(__file__).parents[2]
GOOD = """\
github_repository: acme/models
ci: {account_id: "111111111111", region: us-east-1}
environments:
  dev: {account_id: "111111111111", regions: [us-east-1]}
  staging: {account_id: "222222222222", regions: [us-east-1]}
  prod: {account_id: "333333333333", regions: [eu-west-1, us-east-1], required_reviewers: true}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "deployments").mkdir(exist_ok=True)
    (tmp_path / "deployments/environments.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(environments.EnvironmentsError) as caught:
        environments.load(write(tmp_path, text))
    return [f"{d.location.line}:{d.location.col} {d.field}: {d.message}" for d in caught.value.diagnostics]


def test_the_example_is_valid_and_its_schema_is_generated_and_fresh() -> None:
    loaded = environments.load(ROOT)
    assert loaded is not None
    assert (ROOT / "deployments/environments.schema.json").read_text(encoding="utf-8") == (
        environments.schema_text()
    ), "run `make schema`"
    schema = json.loads(environments.schema_text())
    assert set(schema["required"]) == {"github_repository", "ci", "environments"}
    assert schema["additionalProperties"] is False


def test_errors_name_file_line_and_field(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        "github_repository: acme\n"
        "ci: {account_id: 111111111111, region: us-east-1}\n"
        "environments:\n"
        "  dev:\n"
        "    account_id: '1234'\n"
        "    regions: [us-east-9]\n"
        "    approval: true\n",
    )
    assert found == [
        "1:20 github_repository: 'acme' is not valid here",
        "2:18 ci.account_id: expected text",
        "5:17 environments.dev.account_id: '1234' is not valid here",
        "6:15 environments.dev.regions[0]: 'us-east-9' is not an AWS region (did you mean 'us-east-2'?)",
        "7:5 environments.dev.approval: unknown field 'approval'",
    ]


def test_duplicate_regions_and_foreign_providers_are_refused(tmp_path: Path) -> None:
    assert errors(
        tmp_path, GOOD.replace("[us-east-1]}\n  staging", "[us-east-1, us-east-1]}\n  staging")
    ) == ["4:58 environments.dev.regions[1]: 'us-east-1' is listed twice"]
    foreign = GOOD.replace(
        "required_reviewers: true}",
        "required_reviewers: true, oidc_provider_arn: "
        "'arn:aws:iam::999999999999:oidc-provider/token.actions.githubusercontent.com'}",
    )
    (message,) = errors(tmp_path, foreign)
    assert "environments.prod.oidc_provider_arn: the OIDC provider is in another account" in message


def test_yaml_errors_are_located_too(tmp_path: Path) -> None:
    (found,) = errors(tmp_path, "ci: [\n")
    assert found.startswith("2:1 : YAML syntax:")


def test_derived_views(tmp_path: Path) -> None:
    config = environments.load(write(tmp_path, GOOD)).config
    assert config.accounts() == {
        "111111111111": ["dev"],
        "222222222222": ["staging"],
        "333333333333": ["prod"],
    }
    assert config.home_region("333333333333") == "eu-west-1"
    assert (
        config.role_arn("prod", "deploy") == "arn:aws:iam::333333333333:role/deployctl/deployctl-deploy-prod"
    )
    used = {"dev": {"us-east-1"}, "prod": {"eu-west-1", "us-east-1"}}
    # The CI registry replicates to every (account, region) that runs a deployment, except itself.
    assert bootstrap.destinations(config, used) == [
        ("333333333333", "eu-west-1"),
        ("333333333333", "us-east-1"),
    ]
    assert bootstrap.regions_in_use(config, used, "111111111111") == ["us-east-1"]
    assert bootstrap.regions_in_use(config, used, "222222222222") == []
    assert bootstrap.misplaced(config, {"dev": {"eu-west-1"}, "qa": {"us-east-1"}}) == [
        "dev: a deployment runs in eu-west-1, which environments.yaml does not list for dev",
        "environment qa has deployments but is not in environments.yaml",
    ]


def test_validate_reports_environments_errors(tmp_path: Path) -> None:
    write(tmp_path, GOOD.replace('"222222222222"', "222222222222"))
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "validate"])
    assert result.exit_code == 1
    assert "deployments/environments.yaml:5:" in result.output
    assert "environments.staging.account_id: expected text" in result.output


def test_the_workflows_read_roles_from_it(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    result = CliRunner().invoke(
        cli, ["--root", str(tmp_path), "environments", "-e", "prod", "--github-output"]
    )
    assert result.exit_code == 0, result.output
    lines = dict(line.split("=", 1) for line in result.output.splitlines())
    assert lines["deploy_role"] == "arn:aws:iam::333333333333:role/deployctl/deployctl-deploy-prod"
    assert lines["smoke_role"].endswith(":role/deployctl/deployctl-smoke-prod")
    assert lines["push_role"] == "arn:aws:iam::111111111111:role/deployctl/deployctl-image-push"
    assert lines["ci_region"] == "us-east-1"
    bad = CliRunner().invoke(cli, ["--root", str(tmp_path), "environments", "-e", "qa"])
    assert bad.exit_code == 2
    assert "'qa' is not in environments.yaml" in bad.output


def test_the_deployment_loader_does_not_take_it_for_a_deployment(tmp_path: Path) -> None:
    from tooling import repository

    write(tmp_path, GOOD)
    assert repository.load(tmp_path).diagnostics == []


def test_validate_locates_a_deployment_outside_its_environments_regions(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    (tmp_path / "deployments/dev").mkdir()
    (tmp_path / "deployments/qa").mkdir()
    spec = (
        "name: chat\nowner: team@example.com\nregion: {region}\nmodel: {{id: gpt-4o-mini}}\n"
        "engine: {{type: external, base_url: 'https://api.openai.com/v1',"
        " provider_key_secret: team/openai}}\n"
        "compute: {{service: ecs-fargate}}\n"
    )
    (tmp_path / "deployments/dev/chat.yaml").write_text(spec.format(region="eu-west-1"), encoding="utf-8")
    (tmp_path / "deployments/qa/chat.yaml").write_text(spec.format(region="us-east-1"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "validate"])
    assert result.exit_code == 1
    assert "deployments/dev/chat.yaml:3:9: error: region: dev may not run in eu-west-1" in result.output
    assert "one of us-east-1" in result.output
    assert "deployments/qa/chat.yaml:1:1: error: environment 'qa' is not declared" in result.output


def test_an_environment_named_another_followed_by_a_dash_is_refused(tmp_path: Path) -> None:
    # prod's roles are granted prod-* stacks and deployctl/prod/* secrets: prod-eu's would be inside.
    (found,) = errors(tmp_path, GOOD + '  prod-eu: {account_id: "333333333333", regions: [eu-west-1]}\n')
    line, field, message = found.split(" ", 2)
    assert line.startswith("7:")  # the prod-eu entry
    assert field == "environments.prod-eu:"
    assert "'prod-eu' is 'prod' followed by '-'" in message
    # Names that only share letters are fine.
    text = GOOD + '  production: {account_id: "333333333333", regions: [eu-west-1]}\n'
    assert environments.load(write(tmp_path, text)) is not None


def test_a_deployment_folder_named_another_followed_by_a_dash_is_refused(tmp_path: Path) -> None:
    from tooling import repository

    for folder in ("prod", "prod-eu", "production"):
        (tmp_path / "deployments" / folder).mkdir(parents=True)
        (tmp_path / "deployments" / folder / "chat.yaml").write_text("name: chat\n", encoding="utf-8")
    loaded = repository.load(tmp_path)
    clashes = [d for d in loaded.diagnostics if d.code == "REPO005"]
    assert [d.location.file.relative_to(tmp_path).as_posix() for d in clashes] == [
        "deployments/prod-eu/chat.yaml"
    ]
    assert "starts with environment 'prod' and '-'" in clashes[0].message
    assert {f.environment for f in loaded.files} == {"prod", "production"}
    assert repository.prefix_clash("prod", ["prod-eu"]) is None  # the shorter name is the one kept
    assert repository.prefix_clash("prod-eu-2", ["prod-eu", "dev"]) == "prod-eu"
