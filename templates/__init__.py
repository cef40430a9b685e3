"""Stack builders: one `Deployment` in, one CloudFormation template out.

Pure functions of the spec: no boto3, no network, no clock, so the same spec always renders the same
bytes. Shared pieces (network, load balancer, secrets, IAM, autoscaling, observability) are written once
in their own modules; each target in `targets/` composes them and differs only where AWS differs.
"""

from templates.stack import build, render

__all__ = ["build", "render"]
