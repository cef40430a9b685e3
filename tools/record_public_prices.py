"""Build recorded Price List responses (tests/cost/recorded/) from public AWS-derived price data.

Used once, where there is no AWS account to run `deployctl prices refresh` against: it writes products
in the GetProducts shape that `deployctl prices refresh --from-recorded tests/cost/recorded` replays.
The live refresh (the weekly workflow) replaces all of this with what AWS answers.

Sources (passed as files; not committed here):
  --karpenter  aws/karpenter-provider-aws@6fc13b5236fd04fd16ff3f9dc7490d0813994099
               pkg/providers/pricing/zz_generated.pricing_aws.go, "generated at 2026-07-20T13:44:30Z for
               us-east-1" by its hack/code/prices_gen from the AWS Price List (on-demand Linux, shared).
  --vantage    tsaol/aws-gpu@7412fd256c5eda04a70a17742a68e8e44824b2cb data/all_gpu_instances.js,
               "auto-generated from instances.vantage.sh data, last updated 2026-01-21" (ec2instances.info,
               which reads the AWS offer files): on-demand Linux prices of GPU types per region.
  SAGEMAKER / SERVICES below: figures for us-east-1 cited from the AWS Price List in public
               repositories (each with its citation), else the previous hand-written table's figure,
               marked unverified.

Usage: python -m tools.record_public_prices --karpenter FILE --vantage FILE --out tests/cost/recorded
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import yaml

from tooling import catalog
from tooling.cost import pricelist

KARPENTER = "karpenter@6fc13b5 (Price List, 2026-07-20)"
VANTAGE = "instances.vantage.sh (2026-01-21)"
OLD_TABLE = "unverified: previous hand-written table"
CITED_SM = "cited: get-products 2026-08-17"
CITED_SM_2026_09 = "cited: offer file 2026-09-20"
CITED_TRAINING = "unverified: Training rate taken for Hosting"
CITED_USE2 = "unverified: us-east-2 price taken for us-east-1"
THIRD_PARTY = "unverified: third-party quote"
PUBLIC_PAGES = "unverified: public pricing pages"
# What each evidence mark means (written to the manifest).
EVIDENCE = {
    KARPENTER: "aws/karpenter-provider-aws@6fc13b5236fd04fd16ff3f9dc7490d0813994099 "
    "pkg/providers/pricing/zz_generated.pricing_aws.go, generated 2026-07-20T13:44:30Z by its "
    "hack/code/prices_gen from the Price List (GetProducts: Linux, Shared, preInstalledSw NA, "
    "capacitystatus Used, marketoption OnDemand)",
    VANTAGE: "tsaol/aws-gpu@7412fd256c5eda04a70a17742a68e8e44824b2cb data/all_gpu_instances.js, "
    "auto-generated from instances.vantage.sh (ec2instances.info, built from the AWS offer files), "
    "last updated 2026-01-21; cross-checked: its us-east-1 prices equal Karpenter's for every GPU type",
    CITED_SM: "a public repository's SAGEMAKER_RATES_USD_PER_HOUR, captured 2026-08-17T23:40Z with "
    "aws pricing get-products --service-code AmazonSageMaker (some figures rounded to cents there)",
    CITED_SM_2026_09: "a public repository quoting USE1-Host:ml.g6e.2xlarge = 2.8026 from the "
    "AmazonSageMaker us-east-1 offer file, publicationDate 2026-09-20T02:56:06Z",
    CITED_TRAINING: "the us-east-1 SageMaker offer file's Training rate quoted in a public repository; "
    "a second public repository notes that Training and Hosting usage types price the same",
    CITED_USE2: "USE2-Host:ml.g6.xlarge 1.1267 quoted from aws pricing get-products in a public "
    "repository; us-east-1 taken as equal to us-east-2, which AWS usually prices alike",
    THIRD_PARTY: "SageMaker hosting list prices quoted by third-party public repositories",
    OLD_TABLE: "the previous hand-written table's figure (2026-11-25, from memory): no public source found",
    PUBLIC_PAGES: "the us-east-1 list price AWS's pricing pages and 2026 public pricing summaries state; "
    "issue 15's check against AWS-generated data found these right; no AWS-generated record found here",
}

# SageMaker real-time hosting, us-east-1: (USD per hour, evidence).
SAGEMAKER_US_EAST_1: dict[str, tuple[float, str]] = {
    "ml.g5.xlarge": (1.408, CITED_SM),
    "ml.g5.2xlarge": (1.515, CITED_SM),
    "ml.g6e.xlarge": (2.61, CITED_SM + " (rounded to cents there)"),
    "ml.g6e.2xlarge": (2.8026, CITED_SM_2026_09),
    "ml.g6e.4xlarge": (3.76, CITED_SM + " (rounded to cents there)"),
    "ml.g6e.8xlarge": (5.6607, CITED_SM),
    "ml.g6e.12xlarge": (13.12, CITED_SM + " (rounded to cents there)"),
    "ml.p4d.24xlarge": (25.251, CITED_TRAINING),
    "ml.p5.48xlarge": (63.296, CITED_TRAINING),
    "ml.g6.xlarge": (1.1267, CITED_USE2),
    "ml.g4dn.xlarge": (0.7364, THIRD_PARTY),
    "ml.g4dn.2xlarge": (0.94, THIRD_PARTY),
    "ml.g4dn.4xlarge": (1.505, THIRD_PARTY),
    "ml.g4dn.8xlarge": (2.72, THIRD_PARTY),
    "ml.g4dn.12xlarge": (4.89, THIRD_PARTY),
    "ml.g4dn.16xlarge": (5.44, THIRD_PARTY),
    "ml.g5.4xlarge": (2.03, THIRD_PARTY),
    "ml.g5.8xlarge": (3.06, THIRD_PARTY),
    "ml.g5.12xlarge": (7.09, THIRD_PARTY),
    "ml.g5.16xlarge": (5.12, THIRD_PARTY),
    "ml.g5.24xlarge": (10.18, THIRD_PARTY),
    "ml.g5.48xlarge": (20.36, THIRD_PARTY),
    "ml.g6.2xlarge": (1.222, THIRD_PARTY),
    "ml.g6.12xlarge": (5.752, THIRD_PARTY),
    "ml.g6.16xlarge": (4.246, THIRD_PARTY),
    "ml.g6.24xlarge": (8.344, THIRD_PARTY),
    "ml.g6.4xlarge": (1.654, OLD_TABLE),
    "ml.g6.8xlarge": (2.518, OLD_TABLE),
    "ml.g6.48xlarge": (16.688, OLD_TABLE),
    "ml.g6e.16xlarge": (9.471, OLD_TABLE),
    "ml.g6e.24xlarge": (18.832, OLD_TABLE),
    "ml.g6e.48xlarge": (37.664, OLD_TABLE),
    "ml.p4de.24xlarge": (47.11, OLD_TABLE),
}

# us-east-1 service prices: (USD, Price List unit, evidence). The units are the Price List's; ByteHrs
# storage is priced per GB-month there.
SERVICES_US_EAST_1: dict[str, tuple[float, str, str]] = {
    "fargate_x86_64_vcpu_hour": (0.04048, "hours", PUBLIC_PAGES),
    "fargate_x86_64_gb_hour": (0.004445, "GB-Hours", PUBLIC_PAGES),
    "fargate_arm64_vcpu_hour": (0.03238, "hours", PUBLIC_PAGES),
    "fargate_arm64_gb_hour": (0.00356, "GB-Hours", PUBLIC_PAGES),
    "fargate_ephemeral_gb_hour": (0.000111, "GB-Hours", PUBLIC_PAGES),
    "alb_hour": (0.0225, "Hrs", PUBLIC_PAGES),
    "alb_lcu_hour": (0.008, "LCU-Hrs", PUBLIC_PAGES),
    "nat_gateway_hour": (0.045, "Hrs", PUBLIC_PAGES),
    "nat_gateway_gb": (0.045, "GB", PUBLIC_PAGES),
    "vpc_endpoint_hour": (0.01, "Hrs", PUBLIC_PAGES),
    "vpc_endpoint_gb": (0.01, "GB", PUBLIC_PAGES),
    "public_ipv4_hour": (0.005, "Hrs", PUBLIC_PAGES),
    "ebs_gp3_gb_month": (0.08, "GB-Mo", PUBLIC_PAGES),
    "logs_ingestion_gb": (0.50, "GB", PUBLIC_PAGES),
    "logs_storage_gb_month": (0.03, "GB-Mo", PUBLIC_PAGES),
    "metric_month": (0.30, "Metrics", PUBLIC_PAGES),
    "alarm_metric_month": (0.10, "Alarms", PUBLIC_PAGES),
    "secret_month": (0.40, "Secrets", PUBLIC_PAGES),
    "kms_key_month": (1.00, "Keys", PUBLIC_PAGES),
    "ecr_gb_month": (0.10, "GB-Mo", PUBLIC_PAGES),
    "data_transfer_out_gb": (0.09, "GB", PUBLIC_PAGES),
}


def product(
    service_code: str, region: str, usage_type: str, usd: float, unit: str, evidence: str, **attributes: str
) -> dict:
    """One product in the GetProducts PriceList shape. There is no SKU to record (the sources carry
    none), and the usage type is written without its region prefix, which the sources do not give."""
    sku = "NOT-RECORDED"
    return {
        "product": {
            "productFamily": attributes.pop("productFamily", ""),
            "attributes": {
                "servicecode": service_code,
                "regionCode": region,
                "usagetype": usage_type,
                "deployctlEvidence": evidence,
                **attributes,
            },
            "sku": sku,
        },
        "serviceCode": service_code,
        "terms": {
            "OnDemand": {
                f"{sku}.JRTCKXETXF": {
                    "priceDimensions": {
                        f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                            "unit": unit,
                            "beginRange": "0",
                            "endRange": "Inf",
                            "pricePerUnit": {"USD": f"{usd:.10f}"},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": "2026-01-01T00:00:00Z",
                    "offerTermCode": "JRTCKXETXF",
                }
            }
        },
        "version": "recorded",
        "publicationDate": "recorded",
    }


def karpenter_us_east_1(path: Path) -> dict[str, float]:
    text = path.read_text(encoding="utf-8")
    block = text[text.index('"us-east-1": {') :]
    block = block[: block.index("\n\t},")]
    return {name: float(usd) for name, usd in re.findall(r'"([a-z0-9-]+\.[a-z0-9]+)": ([0-9.]+)', block)}


def vantage(path: Path) -> dict[str, dict[str, float]]:
    text = path.read_text(encoding="utf-8")
    rows = json.loads(text[text.index("[") : text.rindex("]") + 1])
    return {
        row.get("apiName") or row["name"]: {
            region: float(p["onDemand"]) for region, p in row["pricing"].items() if p.get("onDemand")
        }
        for row in rows
    }


def ec2_attributes(region: str, name: str) -> dict[str, str]:
    return {
        "instanceType": name,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "marketoption": "OnDemand",
        "operation": "RunInstances",
        "productFamily": "Compute Instance",
    }


SERVICE_ATTRIBUTES = {
    "alb_hour": {"operation": "LoadBalancing:Application"},
    "alb_lcu_hour": {"operation": "LoadBalancing:Application"},
    "nat_gateway_hour": {"productFamily": "NAT Gateway"},
    "nat_gateway_gb": {"productFamily": "NAT Gateway"},
    "ebs_gp3_gb_month": {"productFamily": "Storage", "volumeApiName": "gp3"},
}


def build(karpenter: Path, vantage_file: Path, out: Path) -> None:
    use1 = karpenter_us_east_1(karpenter)
    by_type = vantage(vantage_file)
    regions = pricelist.commercial_regions()
    files: dict[str, list[dict]] = {"AmazonEC2": [], "AmazonSageMaker": []}
    coverage: dict[str, dict[str, str]] = {}
    disagreements: dict[str, list[str]] = {}
    for region in regions:
        offered = catalog.offered_instance_types(region, sagemaker=False) or frozenset()
        found = 0
        for name in sorted(catalog.EC2_GPU_INSTANCES):
            if region == "us-east-1":
                usd, evidence = use1.get(name), KARPENTER
            else:
                usd, evidence = by_type.get(name, {}).get(region), VANTAGE
            if usd:
                found += 1
                files["AmazonEC2"].append(
                    product(
                        "AmazonEC2",
                        region,
                        f"BoxUsage:{name}",
                        usd,
                        "Hrs",
                        evidence,
                        **ec2_attributes(region, name),
                    )
                )
            elif name in offered:
                disagreements.setdefault(region, []).append(name)
        if found:
            # Complete only where the snapshot agrees with cfn-lint's newer offer lists: a type cfn-lint
            # lists without a recorded price may have launched after the snapshot.
            coverage[region] = {"ec2": "partial" if region in disagreements else "complete"}
    for name, (usd, evidence) in sorted(SAGEMAKER_US_EAST_1.items()):
        files["AmazonSageMaker"].append(
            product(
                "AmazonSageMaker", "us-east-1", f"Host:{name}", usd, "Hrs", evidence,
                instanceName=name, component="Hosting", productFamily="ML Instance",
            )
        )  # fmt: skip
    coverage["us-east-1"]["sagemaker"] = "partial"
    for price in pricelist.SERVICE_PRICES:
        usd, unit, evidence = SERVICES_US_EAST_1[price.key]
        files.setdefault(price.service_code, []).append(
            product(
                price.service_code, "us-east-1", price.usage_type, usd, unit, evidence,
                **SERVICE_ATTRIBUTES.get(price.key, {}),
            )
        )  # fmt: skip
    coverage["us-east-1"]["services"] = "complete"
    out.mkdir(parents=True, exist_ok=True)
    for code, items in sorted(files.items()):
        lines = [json.dumps(p, sort_keys=True) for p in items]
        (out / f"{code}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = {
        "as_of": "2026-12-02",
        "provenance": (
            "replayed from recorded Price List responses (tests/cost/recorded) built on 2026-12-02 by "
            "tools/record_public_prices.py from public AWS-derived data (EC2 us-east-1: Karpenter's "
            "Price List snapshot of 2026-07-20; EC2 other regions: instances.vantage.sh of 2026-01-21; "
            "SageMaker and services: us-east-1 only, figures cited from the Price List or marked "
            "unverified; see each price's evidence and the manifest's legend). No SKUs were recorded; "
            "usage types are given without their region prefix."
        ),
        "evidence": EVIDENCE,
        "coverage": {region: coverage[region] for region in sorted(coverage)},
        "ec2_offers_without_recorded_price": {r: disagreements[r] for r in sorted(disagreements)},
    }
    (out / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False, width=110), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--karpenter", type=Path, required=True)
    parser.add_argument("--vantage", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("tests/cost/recorded"))
    args = parser.parse_args()
    build(args.karpenter, args.vantage, args.out)


if __name__ == "__main__":
    main()
