"""Reading a decoded template the way the rules need it: references, literal values, user data, env."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import networkx
from cfnlint.template import Template


def target(value: Any) -> str | None:
    """The logical id a `Ref` or `Fn::GetAtt` points at, else None."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and isinstance(arg, str):
            return arg
        if key == "Fn::GetAtt":
            if isinstance(arg, list) and arg and isinstance(arg[0], str):
                return arg[0]
            if isinstance(arg, str):
                return arg.split(".")[0]
    return None


def resource(cfn: Template, logical_id: str | None, *types: str) -> dict[str, Any] | None:
    """The resource `logical_id` if it exists (and has one of `types`, when given)."""
    if logical_id is None:
        return None
    found = cfn.template.get("Resources", {}).get(logical_id)
    if not isinstance(found, dict) or (types and found.get("Type") not in types):
        return None
    return found


def props(res: dict[str, Any] | None) -> dict[str, Any]:
    found = (res or {}).get("Properties", {})
    return found if isinstance(found, dict) else {}


def integer(value: Any) -> int | None:
    """A literal integer (CloudFormation accepts numbers as strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def text(value: Any) -> str | None:
    """The literal text of a string, `Fn::Sub` template or `Fn::Join` with literal parts (refs as ${..})."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Fn::Sub":
            return arg if isinstance(arg, str) else text(arg[0]) if isinstance(arg, list) and arg else None
        if key == "Fn::Base64":
            return text(arg)
        if key == "Fn::Join" and isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str):
            parts = [text(p) if text(p) is not None else "${?}" for p in arg[1] or []]
            return arg[0].join(parts)
    return None


def sub_values(value: Any) -> dict[str, Any]:
    """The variable map of an `Fn::Sub` (inside `Fn::Base64`), else {}."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Fn::Base64":
            return sub_values(arg)
        if key == "Fn::Sub" and isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], dict):
            return arg[1]
    return {}


def depends_on(cfn: Template, source: str, dependency: str) -> bool:
    """Whether `source` waits for `dependency` on create, i.e. is deleted before it (Ref, GetAtt, Sub or
    DependsOn, directly or through other resources)."""
    graph = cfn.graph.graph
    return source in graph and dependency in graph and networkx.has_path(graph, source, dependency)


def depends_on_directly(res: dict[str, Any], dependency: str) -> bool:
    found = res.get("DependsOn", [])
    return dependency in ([found] if isinstance(found, str) else found)


def containers(cfn: Template) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(task definition id, index, container definition) for every ECS container in the template."""
    for name, res in cfn.get_resources(["AWS::ECS::TaskDefinition"]).items():
        for i, container in enumerate(props(res).get("ContainerDefinitions", []) or []):
            if isinstance(container, dict):
                yield name, i, container


def environment(container: dict[str, Any]) -> dict[str, Any]:
    return {
        e["Name"]: e.get("Value")
        for e in container.get("Environment", []) or []
        if isinstance(e, dict) and isinstance(e.get("Name"), str)
    }


_DOCKER_ENV = re.compile(r"""(?:--env|-e)[ =]([A-Za-z_][A-Za-z0-9_]*)=('[^']*'|"[^"]*"|\S+)""")
_SUB_VAR = re.compile(r"^\$\{([A-Za-z0-9_.:]+)\}$")


def docker_runs(user_data: Any) -> list[str]:
    """Each `docker run` command line in user data (its literal text)."""
    script = text(user_data) or ""
    return [line for line in script.splitlines() if re.search(r"\bdocker\s+run\b", line)]


def docker_environment(user_data: Any, run: str) -> dict[str, Any]:
    """The `--env NAME=value` pairs of one `docker run` line; `${Var}` values resolved from the Sub map."""
    variables = sub_values(user_data)
    found: dict[str, Any] = {}
    for name, raw in _DOCKER_ENV.findall(run):
        value: Any = raw[1:-1] if raw[:1] in "'\"" else raw
        var = _SUB_VAR.match(value)
        if var:
            value = variables.get(var.group(1), value)
        found[name] = value
    return found


def gateways(cfn: Template) -> Iterator[tuple[list[str | int], dict[str, Any]]]:
    """(path, environment) of every gateway container: an ECS container or a `docker run` in a launch
    template's user data whose environment names GATEWAY_ variables (inference_server's settings)."""
    for task, i, container in containers(cfn):
        env = environment(container)
        if any(k.startswith("GATEWAY_") for k in env):
            yield ["Resources", task, "Properties", "ContainerDefinitions", i, "Environment"], env
    for name, res in cfn.get_resources(["AWS::EC2::LaunchTemplate"]).items():
        user_data = props(res).get("LaunchTemplateData", {}).get("UserData")
        for run in docker_runs(user_data):
            env = docker_environment(user_data, run)
            if any(k.startswith("GATEWAY_") for k in env):
                yield ["Resources", name, "Properties", "LaunchTemplateData", "UserData"], env


def statements(document: Any) -> list[dict[str, Any]]:
    found = (document or {}).get("Statement", []) if isinstance(document, dict) else []
    found = [found] if isinstance(found, dict) else found
    return [s for s in found if isinstance(s, dict)]


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def mentions(value: Any, logical_id: str) -> bool:
    """Whether `value` refers to `logical_id` with a Ref, GetAtt or ${...} of an Fn::Sub, at any depth."""
    if target(value) == logical_id:
        return True
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), (str, list)):
        sub = value["Fn::Sub"]
        template = sub if isinstance(sub, str) else sub[0] if sub and isinstance(sub[0], str) else ""
        if re.search(r"\$\{" + re.escape(logical_id) + r"(\.[^}]*)?\}", template):
            return True
    if isinstance(value, dict):
        return any(mentions(v, logical_id) for v in value.values())
    if isinstance(value, list):
        return any(mentions(v, logical_id) for v in value)
    return False
