"""`deployctl prices refresh` against botocore's Stubber, with GetProducts responses in the documented
shape: PriceList is a list of JSON strings, each a product with product.attributes, product.sku and
terms.OnDemand.<offer>.priceDimensions.<rate>.pricePerUnit.USD; pages are chained with NextToken.
https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html

moto does not model the Price List Query API, hence the Stubber (no network, no credentials).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from click.testing import CliRunner

from tooling import catalog
from tooling.cli import cli
from tooling.cost import pricelist

RECORDED = Path(__file__).parent / "recorded"


def product(
    usage_type: str,
    usd: str | list[tuple[str, str]],
    *,
    sku: str = "SKU1",
    unit: str = "Hrs",
    **attributes: str,
) -> str:
    """One PriceList item as AWS sends it: a JSON string. `usd` as a list gives tiers (beginRange, USD)."""
    tiers = usd if isinstance(usd, list) else [("0", usd)]
    dimensions = {
        f"{sku}.JRTCKXETXF.{index}": {
            "unit": unit,
            "beginRange": begin,
            "endRange": "Inf",
            "description": "test",
            "pricePerUnit": {"USD": price},
            "rateCode": f"{sku}.JRTCKXETXF.{index}",
        }
        for index, (begin, price) in enumerate(tiers)
    }
    return json.dumps(
        {
            "product": {
                "productFamily": attributes.pop("productFamily", "Compute Instance"),
                "attributes": {"usagetype": usage_type, "regionCode": "eu-west-1", **attributes},
                "sku": sku,
            },
            "serviceCode": attributes.get("servicecode", "AmazonEC2"),
            "terms": {
                "OnDemand": {
                    f"{sku}.JRTCKXETXF": {
                        "priceDimensions": dimensions,
                        "sku": sku,
                        "effectiveDate": "2026-11-01T00:00:00Z",
                        "offerTermCode": "JRTCKXETXF",
                        "termAttributes": {},
                    }
                }
            },
            "version": "20261101000000",
            "publicationDate": "2026-11-01T00:00:00Z",
        }
    )


@pytest.fixture
def pricing() -> Any:
    client = boto3.client(
        "pricing", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber


def ec2_request(instance_type: str, token: str | None = None) -> dict[str, Any]:
    filters = [("regionCode", "eu-west-1"), ("instanceType", instance_type), *pricelist.EC2_FILTERS]
    request: dict[str, Any] = {
        "ServiceCode": "AmazonEC2",
        "Filters": [{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in filters],
        "FormatVersion": "aws_v1",
        "MaxResults": 100,
    }
    if token:
        request["NextToken"] = token
    return request


def test_an_instance_price_follows_next_token_and_skips_other_usage_types(pricing: Any) -> None:
    client, stubber = pricing
    stubber.add_response(
        "get_products",
        {
            "FormatVersion": "aws_v1",
            "PriceList": [product("EU-DedicatedUsage:g5.xlarge", "1.5", sku="DED")],
            "NextToken": "page-2",
        },
        ec2_request("g5.xlarge"),
    )
    stubber.add_response(
        "get_products",
        {"FormatVersion": "aws_v1", "PriceList": [product("EU-BoxUsage:g5.xlarge", "1.123", sku="BOX")]},
        ec2_request("g5.xlarge", "page-2"),
    )
    found = pricelist.instance_price(client, "eu-west-1", "g5.xlarge", sagemaker=False)
    assert found is not None
    assert (found.usd, found.sku, found.usage_type, found.service_code) == (
        1.123,
        "BOX",
        "EU-BoxUsage:g5.xlarge",
        "AmazonEC2",
    )
    stubber.assert_no_pending_responses()


def test_a_type_with_no_product_is_not_offered(pricing: Any) -> None:
    client, stubber = pricing
    stubber.add_response(
        "get_products", {"FormatVersion": "aws_v1", "PriceList": []}, ec2_request("g6.xlarge")
    )
    assert pricelist.instance_price(client, "eu-west-1", "g6.xlarge", sagemaker=False) is None


def test_two_matching_products_fail_the_refresh(pricing: Any) -> None:
    client, stubber = pricing
    page = [
        product("EU-BoxUsage:g5.xlarge", "1.1", sku="A"),
        product("EU-BoxUsage:g5.xlarge", "1.2", sku="B"),
    ]
    stubber.add_response(
        "get_products", {"FormatVersion": "aws_v1", "PriceList": page}, ec2_request("g5.xlarge")
    )
    with pytest.raises(
        pricelist.RefreshError, match=r"g5.xlarge in eu-west-1: 2 products match \(SKUs: A, B\)"
    ):
        pricelist.instance_price(client, "eu-west-1", "g5.xlarge", sagemaker=False)


def test_a_zero_price_fails_the_refresh(pricing: Any) -> None:
    client, stubber = pricing
    page = [product("EU-BoxUsage:g5.xlarge", "0.0000000000", sku="ZERO")]
    stubber.add_response(
        "get_products", {"FormatVersion": "aws_v1", "PriceList": page}, ec2_request("g5.xlarge")
    )
    with pytest.raises(pricelist.RefreshError, match="SKU ZERO has no non-zero USD price"):
        pricelist.instance_price(client, "eu-west-1", "g5.xlarge", sagemaker=False)


def test_tiers_take_the_first_paid_one() -> None:
    item = json.loads(
        product("USE1-DataTransfer-Out-Bytes", [("10240", "0.085"), ("0", "0.0"), ("1", "0.09")])
    )
    assert pricelist.on_demand_price(item, "test") == (0.09, "Hrs")


def test_usage_types_match_bare_or_behind_a_region_prefix_only() -> None:
    def item(usage: str) -> dict:
        return json.loads(product(usage, "1"))

    assert pricelist.usage_matches(item("KMS-Keys"), "KMS-Keys")
    assert pricelist.usage_matches(item("USE1-NatGateway-Hours"), "NatGateway-Hours")
    assert pricelist.usage_matches(item("EU-BoxUsage:g5.xlarge"), "BoxUsage:g5.xlarge")
    assert not pricelist.usage_matches(
        item("USE1-SpotUsage-Fargate-vCPU-Hours:perCPU"), "Fargate-vCPU-Hours:perCPU"
    )
    assert not pricelist.usage_matches(
        item("USE1-Fargate-ARM-vCPU-Hours:perCPU"), "Fargate-vCPU-Hours:perCPU"
    )


def service_page(
    prices: list[pricelist.ServicePrice], skip: str | None = None, double: str | None = None
) -> list:
    items = []
    for p in prices:
        if p.key == skip:
            continue
        attributes = {"servicecode": p.service_code, **dict(p.filters)}
        if p.operation:
            attributes["operation"] = p.operation
        copies = 2 if p.key == double else 1
        items += [
            product(f"EUW1-{p.usage_type}", "0.05", sku=f"{p.key}-{n}", **attributes) for n in range(copies)
        ]
    # A classic load balancer's hours share the usage type; the operation tells them apart.
    if any(p.service_code == "AWSELB" for p in prices):
        items.append(product("EUW1-LoadBalancerUsage", "0.028", sku="CLB", operation="LoadBalancing"))
    return items


def stub_services(stubber: Stubber, skip: str | None = None, double: str | None = None) -> None:
    groups: dict[tuple[str, tuple], list[pricelist.ServicePrice]] = {}
    for p in pricelist.SERVICE_PRICES:
        groups.setdefault((p.service_code, p.filters), []).append(p)
    for (code, filters), prices in groups.items():
        expected = {
            "ServiceCode": code,
            "Filters": [
                {"Type": "TERM_MATCH", "Field": f, "Value": v}
                for f, v in [("regionCode", "eu-west-1"), *filters]
            ],
            "FormatVersion": "aws_v1",
            "MaxResults": 100,
        }
        stubber.add_response(
            "get_products",
            {"FormatVersion": "aws_v1", "PriceList": service_page(prices, skip, double)},
            expected,
        )


def test_every_service_price_of_a_region(pricing: Any) -> None:
    client, stubber = pricing
    stub_services(stubber)
    found = pricelist.service_prices(client, "eu-west-1")
    assert set(found) == {p.key for p in pricelist.SERVICE_PRICES}
    assert found["alb_hour"].sku == "alb_hour-0"  # not the classic load balancer's
    assert found["kms_key_month"].usage_type == "EUW1-KMS-Keys"
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(("skip", "double"), [("public_ipv4_hour", None), (None, "nat_gateway_gb")])
def test_a_service_price_must_match_exactly_once(pricing: Any, skip: str | None, double: str | None) -> None:
    client, stubber = pricing
    stub_services(stubber, skip=skip, double=double)
    expected = "0 products match" if skip else "2 products match"
    with pytest.raises(pricelist.RefreshError, match=expected):
        pricelist.service_prices(client, "eu-west-1")


def test_a_region_where_nothing_matches_blames_the_filters(pricing: Any) -> None:
    client, stubber = pricing
    for _ in catalog.EC2_GPU_INSTANCES:
        stubber.add_response("get_products", {"FormatVersion": "aws_v1", "PriceList": []})
    with pytest.raises(pricelist.RefreshError, match="no GPU type matched although cfn-lint lists"):
        pricelist.refresh(client, ["eu-west-1"], {"eu-west-1": {"ec2": True}})


def test_refresh_and_the_writer(pricing: Any) -> None:
    client, stubber = pricing
    for name in sorted(catalog.EC2_GPU_INSTANCES):
        page = [product(f"EU-BoxUsage:{name}", "1.123", sku=f"SKU-{name}")] if name == "g5.xlarge" else []
        stubber.add_response(
            "get_products", {"FormatVersion": "aws_v1", "PriceList": page}, ec2_request(name)
        )
    stub_services(stubber)
    table = pricelist.refresh(client, ["eu-west-1"], {"eu-west-1": {"ec2": True, "services": True}})
    stubber.assert_no_pending_responses()
    text = pricelist.render(table, as_of=dt.date(2026, 12, 1), provenance="read live")
    data = yaml.safe_load(text)
    assert text.startswith("# GENERATED by `deployctl prices refresh`")
    assert (data["as_of"], data["provenance"], data["version"]) == ("2026-12-01", "read live", 2)
    region = data["regions"]["eu-west-1"]
    assert region["complete"] == {"ec2": True, "sagemaker": False, "services": True}
    assert region["ec2"] == {
        "g5.xlarge": {
            "usd": 1.123,
            "unit": "instance-hour",
            "service": "AmazonEC2",
            "usage_type": "EU-BoxUsage:g5.xlarge",
            "sku": "SKU-g5.xlarge",
        }
    }
    assert region["services"]["nat_gateway_hour"]["sku"] == "nat_gateway_hour-0"
    # One price a line: a moved price is a one-line diff.
    assert sum("g5.xlarge:" in line for line in text.splitlines()) == 1
    assert not pricelist.prices_moved(text, text.replace("2026-12-01", "2026-12-08"))
    assert pricelist.prices_moved(text, text.replace("usd: 1.123", "usd: 1.2"))


def test_the_recorded_stand_in_pages_like_the_api() -> None:
    client = pricelist.RecordedPricing(RECORDED)
    request = {
        "ServiceCode": "AmazonEC2",
        "Filters": [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"}],
        "MaxResults": 10,
    }
    first = client.get_products(**request)
    assert len(first["PriceList"]) == 10 and first["NextToken"]
    every = list(pricelist.products(client, "AmazonEC2", [("regionCode", "us-east-1")]))
    assert len(every) > 10 and all(json.loads(json.dumps(p))["product"]["sku"] for p in every)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_the_command_replays_recorded_responses(tmp_path: Path) -> None:
    out = tmp_path / "prices.yaml"
    code, text = run("prices", "refresh", "--from-recorded", str(RECORDED), "--out", str(out))
    assert code == 0 and "prices in" in text and "moved" in text
    code, text = run(
        "prices", "refresh", "--from-recorded", str(RECORDED), "--out", str(out), "--changed-exit-code"
    )
    assert code == 0 and "unchanged" in text


def test_a_failed_refresh_writes_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "recorded"
    broken.mkdir()
    for path in RECORDED.iterdir():
        lines = path.read_text(encoding="utf-8")
        if path.name == "AmazonVPC.jsonl":
            lines = "\n".join(line for line in lines.splitlines() if "PublicIPv4" not in line) + "\n"
        (broken / path.name).write_text(lines, encoding="utf-8")
    out = tmp_path / "prices.yaml"
    code, text = run("prices", "refresh", "--from-recorded", str(broken), "--out", str(out))
    assert code == 1
    assert "prices refresh failed, nothing written: AmazonVPC PublicIPv4:InUseAddress" in text
    assert not out.exists()


def test_the_live_client_is_the_pricing_api_in_us_east_1_with_adaptive_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = pricelist.aws_client()
    assert client.meta.service_model.service_name == "pricing"
    assert client.meta.region_name == "us-east-1"
    assert client.meta.config.retries["mode"] == "adaptive"
