"""E9018: a vLLM container shards over exactly the GPUs its ECS task reserves."""

from __future__ import annotations

import json
from typing import ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from tooling.cfn_rules._template import containers, environment, integer

# vLLM's parallel sizes multiply into the GPUs one server uses; each defaults to 1.
_SIZES = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")


class EcsGpusMatchTensorParallel(CloudFormationLintRule):
    id = "E9018"
    shortdesc = "vLLM uses every GPU its ECS task reserves"
    description = (
        "ECS hands a container the GPUs of its ResourceRequirements, which no other task can use. vLLM "
        "serves on tensor_parallel_size x pipeline_parallel_size x data_parallel_size GPUs, one by "
        "default: fewer than reserved leaves GPUs paid for and idle, more cannot start. The engine "
        "arguments (ENGINE_ARGS, JSON) must multiply to the reserved GPU count."
    )
    source_url = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-gpu.html"
    tags: ClassVar[list[str]] = ["resources", "ecs", "gpu"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        for task, index, container in containers(cfn):
            reserved = [
                integer(r.get("Value"))
                for r in container.get("ResourceRequirements", []) or []
                if isinstance(r, dict) and r.get("Type") == "GPU"
            ]
            raw = environment(container).get("ENGINE_ARGS")
            if not reserved or reserved[0] is None or not isinstance(raw, str):
                continue
            try:
                args = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(args, dict):
                continue
            used = 1
            for name in _SIZES:
                size = integer(args.get(name, args.get(name.replace("_", "-"), 1)))
                used *= size if size and size > 0 else 1
            if used != reserved[0]:
                matches.append(
                    RuleMatch(
                        ["Resources", task, "Properties", "ContainerDefinitions", index, "Environment"],
                        f"{task}: container {container.get('Name')} reserves {reserved[0]} GPU(s) but its "
                        f"ENGINE_ARGS parallel sizes use {used}; set tensor_parallel_size so that they "
                        f"multiply to {reserved[0]}",
                    )
                )
        return matches
