"""The project's own cfn-lint rules: behaviour of AWS that no resource schema expresses.

One rule a module, each a `cfnlint.rules.CloudFormationLintRule` with an E9xxx/W9xxx id and the AWS page
it enforces as its `source_url`. `tooling/lint.py` appends them to cfn-lint's rules (the way
`--append-rules` does, module by module), so `deployctl render`, `deployctl plan` and the template tests
run them on every template. Modules starting with `_` hold shared helpers, not rules.

Conventions the rules read from templates (stack builders set them where they mean it):
- `Metadata: {deployctl: {endpoint_private_dns: explicit}}` on an interface VPC endpoint in a VPC the
  stack does not create: private DNS was asked for in the spec (network.endpoint_private_dns), so E9006
  accepts it.
- `Metadata: {deployctl: {vllm_version: "0.34.0"}}` at the template's top: the spec's engine.version, on
  every stack that declares VllmImageTag (templates/images.py); E9045 checks the parameter against it.
"""

from __future__ import annotations

import pkgutil

MODULES: tuple[str, ...] = tuple(
    f"{__name__}.{info.name}"
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
    if not info.name.startswith("_")
)
