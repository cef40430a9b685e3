"""The certificate check of plan and deploy, against botocore's Stubber with what ACM documents.

moto's ACM issues every requested certificate after a delay and has no access-denied path, so these
tests give the check DescribeCertificate's documented responses and errors
(https://docs.aws.amazon.com/acm/latest/APIReference/API_DescribeCertificate.html), including wildcard
subject alternative names.
"""

from __future__ import annotations

import datetime
import json
import threading
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tooling import certificates, changesets, deploy
from tooling.snapshot import StackState

ARN = "arn:aws:acm:us-east-1:123456789012:certificate/4f2b8c1e-7d3a-4e9b-a1c6-0d5e8f7a9b21"
NOW = datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC)


def template(domain: str | None = "llm.example.com", https: bool = True) -> str:
    listener = {"Protocol": "HTTPS", "Port": 443, "Certificates": [{"CertificateArn": ARN}]}
    url: Any = f"https://{domain}" if domain else {"Fn::Sub": "http://${Dns}"}
    return json.dumps(
        {
            "Resources": {
                "Listener": {
                    "Type": "AWS::ElasticLoadBalancingV2::Listener",
                    "Properties": listener if https else {"Protocol": "HTTP", "Port": 80},
                }
            },
            "Outputs": {"EndpointUrl": {"Value": url}},
        }
    )


def described(domain: str, sans: list[str], status: str = "ISSUED") -> dict[str, Any]:
    return {
        "Certificate": {
            "CertificateArn": ARN,
            "DomainName": domain,
            "SubjectAlternativeNames": sans,
            "Status": status,
            "Type": "AMAZON_ISSUED",
            "CreatedAt": NOW,
            "InUseBy": [],
            "KeyAlgorithm": "RSA_2048",
        }
    }


@pytest.fixture
def acm(monkeypatch: pytest.MonkeyPatch) -> Any:
    client = boto3.client("acm", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")

    def only_acm(service: str, region: str) -> Any:
        assert service == "acm", f"nothing but ACM may be called before the certificate is judged: {service}"
        return client

    monkeypatch.setattr("tooling.aws.client", only_acm)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def answer(stubber: Stubber, response: dict[str, Any]) -> None:
    stubber.add_response("describe_certificate", response, {"CertificateArn": ARN})


@pytest.mark.parametrize(
    ("pattern", "name", "covered"),
    [
        ("llm.example.com", "llm.example.com", True),
        ("LLM.Example.com.", "llm.example.com", True),
        ("*.example.com", "llm.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.llm.example.com", False),
        ("*.llm.example.com", "llm.example.com", False),
        ("api.example.com", "llm.example.com", False),
    ],
)
def test_wildcards_cover_one_label(pattern: str, name: str, covered: bool) -> None:
    assert certificates.covers(pattern, name) is covered


def test_a_wildcard_subject_alternative_name_covers_the_endpoint(acm: Stubber) -> None:
    answer(acm, described("example.com", ["example.com", "*.example.com"]))
    verdict = certificates.check(template(), "us-east-1")
    assert (verdict.errors, verdict.warnings) == ([], [])


def test_a_certificate_for_another_name_is_refused(acm: Stubber) -> None:
    answer(acm, described("api.example.com", ["api.example.com", "*.api.example.com"]))
    (error,) = certificates.check(template(), "us-east-1").errors
    assert "is for *.api.example.com, api.example.com, not llm.example.com" in error


def test_a_certificate_not_yet_issued_is_refused(acm: Stubber) -> None:
    answer(acm, described("llm.example.com", ["llm.example.com"], status="PENDING_VALIDATION"))
    (error,) = certificates.check(template(), "us-east-1").errors
    assert "is PENDING_VALIDATION, not ISSUED" in error


def test_a_missing_certificate_is_refused(acm: Stubber) -> None:
    acm.add_client_error(
        "describe_certificate", "ResourceNotFoundException", "Could not find certificate", 400
    )
    (error,) = certificates.check(template(), "us-east-1").errors
    assert "does not exist in this account and region" in error


def test_a_role_that_may_not_look_gets_a_warning(acm: Stubber) -> None:
    acm.add_client_error("describe_certificate", "AccessDeniedException", "not authorized", 400)
    verdict = certificates.check(template(), "us-east-1")
    assert verdict.errors == [] and "acm:DescribeCertificate" in verdict.warnings[0]


def test_plain_http_asks_acm_nothing(acm: Stubber) -> None:
    assert certificates.check(template(domain=None, https=False), "us-east-1") == certificates.Verdict()


def state(text: str) -> StackState:
    return StackState("dev", "demo", "deployments/dev/demo.yaml", "us-east-1", text)


def test_deploy_refuses_before_touching_the_stack(acm: Stubber) -> None:
    answer(acm, described("api.example.com", ["api.example.com"]))
    # Any CloudFormation call would fail the fixture's guard: the stack is not even described.
    result = deploy._guarded(state(template()), deploy.Options(timeout=60), threading.Event())
    assert result.outcome == "failed"
    assert "not llm.example.com" in result.reasons[0]


def test_the_plan_marks_the_stack_invalid(acm: Stubber) -> None:
    answer(acm, described("llm.example.com", ["llm.example.com"], status="EXPIRED"))
    plan = changesets._plan_stack(state(template()), image_tag=None)
    assert plan.action == "invalid"
    assert "is EXPIRED, not ISSUED" in plan.errors[0]
