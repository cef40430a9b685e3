"""`deployctl prices refresh`: the price table, read from AWS's Price List Query API.

The Price List Query API (`pricing` client, endpoint in us-east-1) answers GetProducts with
`PriceList`, a list of JSON strings, each one product: `product.attributes` (regionCode, usagetype,
instanceType, ...), `product.sku`, and `terms.OnDemand.<offer>.priceDimensions.<rate>` with `unit`,
`beginRange` and `pricePerUnit.USD`. Results are paged with NextToken.
https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html
https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/using-the-aws-price-list-query-api.html

What is read, for every region a deployment may use (the commercial partition; China has its own
Price List endpoint and is not read here):

- EC2: on-demand Linux, shared tenancy, no pre-installed software, capacitystatus Used, one query per
  GPU type of `tooling.catalog`; usage type `<prefix>BoxUsage:<type>`.
- SageMaker: real-time hosting (`<prefix>Host:ml.<type>`), one query per type.
- Services: Fargate vCPU and GB per architecture and ephemeral storage, ALB hours and LCUs, NAT
  gateway hours and GB, interface endpoint hours and GB, in-use public IPv4 addresses, EBS gp3,
  CloudWatch Logs ingestion and storage, custom metrics and alarms, Secrets Manager, KMS, ECR storage,
  data transfer out to the internet.

Rules the refresh keeps: an instance query matches nothing (not sold on demand there) or exactly one
product with one non-zero price; a service price matches exactly one product with a non-zero price.
Anything else fails the whole refresh with the query, the region and what was found, and no table is
written. Tiered prices (VPC endpoint GB, metrics, data transfer out) take the first paid tier.

The boto3 client is passed in, so tests drive it with botocore's Stubber and `--from-recorded` drives
it with `RecordedPricing`, a stand-in that answers GetProducts from recorded products on disk.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from tooling import catalog

PRICING_REGION = "us-east-1"
PAGE_SIZE = 100
# The region code prefix most usage types carry (USE1-, EUW1-, EU-, APN1-, UGW1-...).
_USAGE_PREFIX = re.compile(r"[A-Z]{2,4}[0-9]?")


class RefreshError(RuntimeError):
    """A query did not match exactly one non-zero price; the message says which and what came back."""


class PricingClient(Protocol):
    def get_products(self, **kwargs: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ServicePrice:
    """One service price: a group of products (service code + filters) and the usage type in it."""

    key: str
    service_code: str
    usage_type: str  # after the region prefix
    unit: str  # what the table's figure is per (the Price List unit, or its conversion)
    operation: str | None = None
    filters: tuple[tuple[str, str], ...] = ()
    # Price List units the figure is converted from: GB-Mo stays, ByteHrs are GB-months of storage.
    note: str = ""


SERVICE_PRICES: tuple[ServicePrice, ...] = (
    ServicePrice("fargate_x86_64_vcpu_hour", "AmazonECS", "Fargate-vCPU-Hours:perCPU", "vCPU-hour"),
    ServicePrice("fargate_x86_64_gb_hour", "AmazonECS", "Fargate-GB-Hours", "GB-hour"),
    ServicePrice("fargate_arm64_vcpu_hour", "AmazonECS", "Fargate-ARM-vCPU-Hours:perCPU", "vCPU-hour"),
    ServicePrice("fargate_arm64_gb_hour", "AmazonECS", "Fargate-ARM-GB-Hours", "GB-hour"),
    ServicePrice("fargate_ephemeral_gb_hour", "AmazonECS", "Fargate-EphemeralStorage-GB-Hours", "GB-hour"),
    ServicePrice("alb_hour", "AWSELB", "LoadBalancerUsage", "hour", operation="LoadBalancing:Application"),
    ServicePrice("alb_lcu_hour", "AWSELB", "LCUUsage", "LCU-hour", operation="LoadBalancing:Application"),
    ServicePrice(
        "nat_gateway_hour",
        "AmazonEC2",
        "NatGateway-Hours",
        "hour",
        filters=(("productFamily", "NAT Gateway"),),
    ),
    ServicePrice(
        "nat_gateway_gb", "AmazonEC2", "NatGateway-Bytes", "GB", filters=(("productFamily", "NAT Gateway"),)
    ),
    ServicePrice("vpc_endpoint_hour", "AmazonVPC", "VpcEndpoint-Hours", "endpoint-AZ-hour"),
    ServicePrice("vpc_endpoint_gb", "AmazonVPC", "VpcEndpoint-Bytes", "GB"),
    ServicePrice("public_ipv4_hour", "AmazonVPC", "PublicIPv4:InUseAddress", "address-hour"),
    ServicePrice(
        "ebs_gp3_gb_month",
        "AmazonEC2",
        "EBS:VolumeUsage.gp3",
        "GB-month",
        filters=(("productFamily", "Storage"), ("volumeApiName", "gp3")),
    ),
    ServicePrice("logs_ingestion_gb", "AmazonCloudWatch", "DataProcessing-Bytes", "GB"),
    ServicePrice("logs_storage_gb_month", "AmazonCloudWatch", "TimedStorage-ByteHrs", "GB-month"),
    ServicePrice("metric_month", "AmazonCloudWatch", "CW:MetricMonitorUsage", "metric-month"),
    ServicePrice("alarm_metric_month", "AmazonCloudWatch", "CW:AlarmMonitorUsage", "alarm-metric-month"),
    ServicePrice("secret_month", "AWSSecretsManager", "AWSSecretsManager-Secrets", "secret-month"),
    ServicePrice("kms_key_month", "awskms", "KMS-Keys", "key-month"),
    ServicePrice("ecr_gb_month", "AmazonECR", "TimedStorage-ByteHrs", "GB-month"),
    ServicePrice("data_transfer_out_gb", "AWSDataTransfer", "DataTransfer-Out-Bytes", "GB"),
)

EC2_FILTERS = (
    ("operatingSystem", "Linux"),
    ("tenancy", "Shared"),
    ("preInstalledSw", "NA"),
    ("capacitystatus", "Used"),
    ("marketoption", "OnDemand"),
)


@dataclass
class Found:
    """A price the refresh read, and where from."""

    usd: float
    unit: str
    service_code: str
    usage_type: str
    sku: str
    evidence: str = ""  # set only by recorded responses: where a recorded figure was taken from

    def to_yaml(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "usd": self.usd,
            "unit": self.unit,
            "service": self.service_code,
            "usage_type": self.usage_type,
            "sku": self.sku,
        }
        if self.evidence:
            entry["evidence"] = self.evidence
            entry["verified"] = not self.evidence.startswith("unverified")
        return entry


@dataclass
class RegionPrices:
    ec2: dict[str, Found] = field(default_factory=dict)
    sagemaker: dict[str, Found] = field(default_factory=dict)
    services: dict[str, Found] = field(default_factory=dict)
    complete: dict[str, bool] = field(default_factory=dict)


# ---------------------------------------------------------------- reading


def products(client: PricingClient, service_code: str, filters: Iterable[tuple[str, str]]) -> Iterator[dict]:
    """Every product GetProducts returns for these TERM_MATCH filters, across all pages."""
    request: dict[str, Any] = {
        "ServiceCode": service_code,
        "Filters": [{"Type": "TERM_MATCH", "Field": f, "Value": v} for f, v in filters],
        "FormatVersion": "aws_v1",
        "MaxResults": PAGE_SIZE,
    }
    while True:
        page = client.get_products(**request)
        for item in page.get("PriceList", []):
            yield json.loads(item) if isinstance(item, str) else item
        token = page.get("NextToken")
        if not token:
            return
        request["NextToken"] = token


def usage_matches(product: dict, wanted: str) -> bool:
    """Whether a product's usage type is `wanted`, bare or behind a region prefix: NatGateway-Hours
    matches USE1-NatGateway-Hours, never USE1-SpotUsage-NatGateway-Hours."""
    usage = product["product"]["attributes"].get("usagetype", "")
    if usage == wanted:
        return True
    head, _, tail = usage.partition("-")
    return tail == wanted and bool(_USAGE_PREFIX.fullmatch(head))


def on_demand_price(product: dict, what: str) -> tuple[float, str]:
    """(USD, unit) of a product's on-demand price: its only price dimension, or for a tiered price the
    first tier with a non-zero price. Fails when there is no on-demand term or no non-zero price."""
    terms = list((product.get("terms", {}).get("OnDemand") or {}).values())
    if len(terms) != 1:
        raise RefreshError(f"{what}: {len(terms)} on-demand terms for SKU {_sku(product)}, expected 1")
    dimensions = sorted(
        terms[0].get("priceDimensions", {}).values(), key=lambda d: float(d.get("beginRange", "0"))
    )
    paid = [(float(d["pricePerUnit"].get("USD", "0")), d.get("unit", "")) for d in dimensions]
    paid = [(usd, unit) for usd, unit in paid if usd > 0]
    if not paid:
        raise RefreshError(f"{what}: SKU {_sku(product)} has no non-zero USD price")
    return paid[0]


def _sku(product: dict) -> str:
    return str(product.get("product", {}).get("sku", "?"))


def _found(product: dict, what: str, unit: str | None = None) -> Found:
    usd, price_unit = on_demand_price(product, what)
    attributes = product["product"]["attributes"]
    return Found(
        usd=usd,
        unit=unit or price_unit,
        service_code=product.get("serviceCode") or attributes.get("servicecode", ""),
        usage_type=attributes.get("usagetype", ""),
        sku=_sku(product),
        evidence=str(attributes.get("deployctlEvidence", "")),
    )


def _one(matches: list[dict], what: str, *, optional: bool) -> dict | None:
    if not matches and optional:
        return None
    if len(matches) != 1:
        skus = ", ".join(_sku(p) for p in matches) or "none"
        raise RefreshError(f"{what}: {len(matches)} products match (SKUs: {skus}); expected exactly 1")
    return matches[0]


def instance_price(
    client: PricingClient, region: str, instance_type: str, *, sagemaker: bool
) -> Found | None:
    """The on-demand price of one instance type in `region`; None when it is not sold on demand there."""
    if sagemaker:
        code, suffix = "AmazonSageMaker", f"Host:{instance_type}"
        filters = [("regionCode", region), ("instanceName", instance_type), ("component", "Hosting")]
    else:
        code, suffix = "AmazonEC2", f"BoxUsage:{instance_type}"
        filters = [("regionCode", region), ("instanceType", instance_type), *EC2_FILTERS]
    what = f"{code} {instance_type} in {region}"
    matches = [p for p in products(client, code, filters) if usage_matches(p, suffix)]
    product = _one(matches, what, optional=True)
    return None if product is None else _found(product, what, "instance-hour")


def service_prices(client: PricingClient, region: str) -> dict[str, Found]:
    """Every SERVICE_PRICES entry in `region`: one GetProducts per service code and filter set."""
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], list[ServicePrice]] = {}
    for price in SERVICE_PRICES:
        groups.setdefault((price.service_code, price.filters), []).append(price)
    found: dict[str, Found] = {}
    for (code, filters), wanted in groups.items():
        listed = list(products(client, code, [("regionCode", region), *filters]))
        for price in wanted:
            what = f"{code} {price.usage_type} ({price.key}) in {region}"
            matches = [
                p
                for p in listed
                if usage_matches(p, price.usage_type)
                and (
                    price.operation is None or p["product"]["attributes"].get("operation") == price.operation
                )
            ]
            product = _one(matches, what, optional=False)
            assert product is not None
            found[price.key] = _found(product, what, price.unit)
    return {key: found[key] for key in sorted(found)}


def commercial_regions() -> list[str]:
    """Every region of the `aws` partition that cfn-lint lists EC2 offers for."""
    return sorted(
        r
        for r, partition in catalog.regions().items()
        if partition == "aws" and catalog.offered_instance_types(r, sagemaker=False) is not None
    )


def refresh(
    client: PricingClient, regions: Iterable[str], sections: dict[str, dict[str, bool]] | None = None
) -> dict[str, RegionPrices]:
    """Read every price of every region.

    `sections` limits a region to some of ec2/sagemaker/services, each marked complete or not (the
    recorded replay covers only what was recorded); by default a region is read in full and complete.
    """
    table: dict[str, RegionPrices] = {}
    for region in regions:
        wanted = (sections or {}).get(region) or dict.fromkeys(("ec2", "sagemaker", "services"), True)
        result = RegionPrices()
        if "ec2" in wanted:
            for name in sorted(catalog.EC2_GPU_INSTANCES):
                if (price := instance_price(client, region, name, sagemaker=False)) is not None:
                    result.ec2[name] = price
        if "sagemaker" in wanted:
            for name in sorted(catalog.SAGEMAKER_GPU_INSTANCES):
                if (price := instance_price(client, region, name, sagemaker=True)) is not None:
                    result.sagemaker[name] = price
        if "services" in wanted:
            result.services = service_prices(client, region)
        for section, ours in (
            ("ec2", catalog.EC2_GPU_INSTANCES),
            ("sagemaker", catalog.SAGEMAKER_GPU_INSTANCES),
        ):
            listed = catalog.offered_instance_types(region, sagemaker=section == "sagemaker") or frozenset()
            if section in wanted and not getattr(result, section) and listed & set(ours):
                # cfn-lint lists GPU types here but nothing matched: the filters, not AWS, are wrong.
                raise RefreshError(
                    f"{section} in {region}: no GPU type matched although cfn-lint lists "
                    f"{len(listed & set(ours))}; check the query filters"
                )
        result.complete = {s: bool(wanted.get(s, False)) for s in ("ec2", "sagemaker", "services")}
        table[region] = result
    return table


# ---------------------------------------------------------------- writing

HEADER = """\
# GENERATED by `deployctl prices refresh` (tooling/cost/pricelist.py); do not edit by hand.
# USD on-demand prices per region from the AWS Price List Query API (GetProducts), each with its
# source: Price List service code, usage type and SKU. `complete` says which sections were read in
# full for a region: only there does a missing instance type mean "not sold on demand". `evidence`
# appears only on prices replayed from recorded responses: tests/cost/recorded/manifest.yaml explains it.
"""


def render(table: dict[str, RegionPrices], *, as_of: dt.date, provenance: str) -> str:
    """The YAML text of the table: one price a line, so a price change is a one-line diff."""
    data = {
        "version": 2,
        "as_of": as_of.isoformat(),
        "source": "AWS Price List Query API (pricing:GetProducts, endpoint us-east-1)",
        "provenance": provenance,
        "currency": "USD",
        "hours_per_month": 730,
        "regions": {
            region: {
                "complete": prices.complete,
                "ec2": {k: v.to_yaml() for k, v in sorted(prices.ec2.items())},
                "sagemaker": {k: v.to_yaml() for k, v in sorted(prices.sagemaker.items())},
                "services": {k: v.to_yaml() for k, v in sorted(prices.services.items())},
            }
            for region, prices in sorted(table.items())
        },
    }
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100_000, allow_unicode=True)
    return HEADER + body


def write(path: Path, text: str) -> bool:
    """Write the table; True when it changed."""
    old = path.read_text(encoding="utf-8") if path.exists() else None
    if old == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def prices_moved(old_text: str | None, new_text: str) -> bool:
    """Whether any price, source or offer changed, ignoring the as_of date and provenance line."""

    def body(text: str | None) -> Any:
        data = yaml.safe_load(text) if text else None
        return data.get("regions") if isinstance(data, dict) else None

    return body(old_text) != body(new_text)


# ---------------------------------------------------------------- recorded responses


class RecordedPricing:
    """Answers GetProducts from recorded products instead of AWS: `<dir>/<ServiceCode>.jsonl`, one
    product a line in the Price List's shape, filtered with TERM_MATCH (an attribute equal to the value)
    and paged with NextToken like the API. `<dir>/manifest.yaml` says what was recorded, from where."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.manifest = yaml.safe_load((directory / "manifest.yaml").read_text(encoding="utf-8"))
        self._products: dict[str, list[dict]] = {}
        self.calls = 0

    def _load(self, service_code: str) -> list[dict]:
        if service_code not in self._products:
            path = self.directory / f"{service_code}.jsonl"
            lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
            self._products[service_code] = [json.loads(line) for line in lines if line.strip()]
        return self._products[service_code]

    def get_products(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        wanted = {f["Field"]: f["Value"] for f in kwargs.get("Filters", [])}
        matching = [
            p for p in self._load(kwargs["ServiceCode"]) if all(_field(p, k) == v for k, v in wanted.items())
        ]
        start = int(kwargs.get("NextToken") or 0)
        size = int(kwargs.get("MaxResults") or PAGE_SIZE)
        page = matching[start : start + size]
        response: dict[str, Any] = {"FormatVersion": "aws_v1", "PriceList": [json.dumps(p) for p in page]}
        if start + size < len(matching):
            response["NextToken"] = str(start + size)
        return response

    def regions(self) -> list[str]:
        return sorted(self.manifest["coverage"])

    def sections(self) -> dict[str, dict[str, bool]]:
        """region -> {section: complete}: what was recorded, and whether in full."""
        return {
            region: {section: state == "complete" for section, state in parts.items()}
            for region, parts in self.manifest["coverage"].items()
        }

    def provenance(self) -> str:
        return " ".join(str(self.manifest["provenance"]).split())

    def as_of(self) -> dt.date:
        return dt.date.fromisoformat(str(self.manifest["as_of"]))


def _field(product: dict, name: str) -> str | None:
    # GetProducts filters on the product's attributes and on its productFamily, which sits beside them.
    if name == "productFamily":
        return product["product"].get("productFamily")
    return product["product"]["attributes"].get(name)


def aws_client() -> PricingClient:
    """The Price List Query API client: adaptive retries (tooling/aws.py), since a full refresh makes
    some three thousand GetProducts calls and the API throttles."""
    from tooling import aws  # noqa: PLC0415 - only a live refresh needs it

    return aws.client("pricing", PRICING_REGION)
