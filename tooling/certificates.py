"""Is the certificate of a stack's HTTPS listener meant for the name clients call? ACM says, at plan/deploy.

Offline validation cannot read ACM; a plan or deploy against AWS can, before any change set: a
certificate that does not cover `network.domain_name`, or is not yet issued, would fail every client's
hostname check (or the listener's creation), so the stack is refused and nothing is touched.
https://docs.aws.amazon.com/acm/latest/APIReference/API_DescribeCertificate.html
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from tooling import aws


@dataclass
class Verdict:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def covers(pattern: str, name: str) -> bool:
    """Whether a certificate name covers `name`: exactly, or a wildcard standing for one leftmost label.

    `*.example.com` covers `api.example.com`, but neither `example.com` nor `a.b.example.com` (RFC 6125
    6.4.3, as ACM documents for wildcard names).
    """
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        label, _, rest = name.partition(".")
        return bool(label) and rest == pattern[2:]
    return pattern == name


def expected(template: dict[str, Any]) -> tuple[str, str] | None:
    """(certificate ARN, domain name) a rendered template promises, or None for a plain-HTTP stack."""
    arn = None
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties", {})
        if (
            resource.get("Type") == "AWS::ElasticLoadBalancingV2::Listener"
            and props.get("Protocol") == "HTTPS"
        ):
            arn = props["Certificates"][0]["CertificateArn"]
    url = template.get("Outputs", {}).get("EndpointUrl", {}).get("Value")
    if not (isinstance(arn, str) and isinstance(url, str) and url.startswith("https://")):
        return None
    return arn, url.removeprefix("https://").split("/", 1)[0]


def judge(acm: Any, certificate_arn: str, domain_name: str) -> Verdict:
    verdict = Verdict()
    try:
        certificate = acm.describe_certificate(CertificateArn=certificate_arn)["Certificate"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("AccessDeniedException", "AccessDenied"):
            verdict.warnings.append(
                f"could not check certificate {certificate_arn} covers {domain_name}: "
                "this role may not call acm:DescribeCertificate"
            )
        elif code == "ResourceNotFoundException":
            verdict.errors.append(f"certificate {certificate_arn} does not exist in this account and region")
        else:
            raise
        return verdict
    names = [certificate.get("DomainName", ""), *certificate.get("SubjectAlternativeNames", [])]
    if not any(covers(n, domain_name) for n in names if n):
        verdict.errors.append(
            f"certificate {certificate_arn} is for {', '.join(sorted(set(names)))}, not {domain_name}: "
            "every HTTPS client would refuse it; use a certificate for this name, or change domain_name"
        )
    status = certificate.get("Status", "")
    if status != "ISSUED":
        verdict.errors.append(
            f"certificate {certificate_arn} is {status}, not ISSUED: the load balancer cannot serve it "
            "(finish its DNS or e-mail validation first)"
        )
    return verdict


def check(template_text: str, region: str) -> Verdict:
    """The verdict on a rendered template's certificate; no AWS call for a stack without HTTPS."""
    promise = expected(json.loads(template_text))
    if promise is None:
        return Verdict()
    return judge(aws.client("acm", region), *promise)
