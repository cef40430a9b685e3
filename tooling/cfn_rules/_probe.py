"""Finding a stack's smoke probe (templates/smoke_probe.py) and the load balancer it must reach."""

from __future__ import annotations

import json
from typing import Any

from cfnlint.template import Template

from templates.smoke_probe import OUTPUT
from tooling.cfn_rules._template import as_list, props, resource, target

LOAD_BALANCER = "AWS::ElasticLoadBalancingV2::LoadBalancer"
FUNCTION = "AWS::Lambda::Function"


def internal_load_balancers(cfn: Template) -> dict[str, dict[str, Any]]:
    """Application load balancers with the internal scheme: reachable only from inside their VPC."""
    return {
        name: res
        for name, res in cfn.get_resources([LOAD_BALANCER]).items()
        if props(res).get("Scheme") == "internal" and props(res).get("Type", "application") == "application"
    }


def probe(cfn: Template) -> tuple[str, dict[str, Any]] | None:
    """The function the SmokeProbeFunction output names (what `deployctl smoke` invokes), if any."""
    output = cfn.template.get("Outputs", {}).get(OUTPUT)
    name = target(output.get("Value")) if isinstance(output, dict) else None
    found = resource(cfn, name, FUNCTION)
    return (name, found) if name and found else None


def key(value: Any) -> str:
    """A comparable form of a template value (a literal id, a Ref, a GetAtt...)."""
    return json.dumps(value, sort_keys=True)


def keys(values: Any) -> set[str]:
    return {key(v) for v in as_list(values)}


def vpc_config(function: dict[str, Any]) -> dict[str, Any]:
    found = props(function).get("VpcConfig")
    return found if isinstance(found, dict) else {}


def listener_ports(cfn: Template, load_balancer: str) -> set[int]:
    """The ports of the listeners on `load_balancer`."""
    ports = set()
    for res in cfn.get_resources(["AWS::ElasticLoadBalancingV2::Listener"]).values():
        p = props(res)
        if target(p.get("LoadBalancerArn")) == load_balancer and isinstance(p.get("Port"), (int, str)):
            ports.add(int(p["Port"]))
    return ports
