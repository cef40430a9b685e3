"""The price table (`tooling/data/prices.yaml`), as `deployctl prices refresh` wrote it.

Per region, three sections: `ec2` and `sagemaker` (USD per instance-hour by instance type) and
`services` (USD per unit by the keys of `tooling.cost.pricelist.SERVICE_PRICES`). Every entry carries
where it came from: the Price List service code, usage type and SKU. A region's `complete` map says
which sections the refresh read in full; only a complete section is proof that a type missing from it
is not sold on demand there.

Pure: no network, no clock (the age of the table is computed against a date the caller passes).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

REFERENCE_REGION = "us-east-1"


@cache
def prices() -> dict[str, Any]:
    """The price table, read once from the package data."""
    text = resources.files("tooling").joinpath("data/prices.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@dataclass(frozen=True)
class Price:
    """One price as the estimate uses it. `region` is where it was read: the deployment's own region,
    or us-east-1 when the table has no price for that region (`fallback`)."""

    usd: float
    region: str
    fallback: bool
    verified: bool


class MissingPrice(LookupError):
    """The table has no price for this key, in the region nor in us-east-1."""


def _entry(region: str, section: str, key: str) -> dict[str, Any] | None:
    return (prices()["regions"].get(region) or {}).get(section, {}).get(key)


def lookup(region: str, section: str, key: str) -> Price:
    """The price of `key` in `region`; a service price falls back to us-east-1, an instance never does
    (an instance's price is what a region offers, and validation refuses the types it does not)."""
    entry = _entry(region, section, key)
    fallback = False
    if entry is None and section == "services" and region != REFERENCE_REGION:
        entry, fallback = _entry(REFERENCE_REGION, section, key), True
    if entry is None:
        raise MissingPrice(f"no {section} price for {key} in {region} in tooling/data/prices.yaml")
    return Price(
        usd=float(entry["usd"]),
        region=REFERENCE_REGION if fallback else region,
        fallback=fallback,
        verified=bool(entry.get("verified", True)),
    )


def region_known(region: str) -> bool:
    return region in prices()["regions"]


def section_complete(region: str, section: str) -> bool:
    """Whether the refresh read `section` of `region` in full, so absence means "not offered"."""
    return bool((prices()["regions"].get(region) or {}).get("complete", {}).get(section, False))


def offered(region: str, section: str) -> frozenset[str] | None:
    """Instance types priced on demand in `region`, or None when the section is not complete."""
    if not section_complete(region, section):
        return None
    return frozenset(prices()["regions"][region].get(section, {}))


def as_of() -> dt.date:
    return dt.date.fromisoformat(str(prices()["as_of"]))


def age_days(today: dt.date) -> int:
    return (today - as_of()).days


def age_text(today: dt.date) -> str:
    """'prices as of 2026-12-02 (3 days old)', what the plan and `deployctl cost` print."""
    days = age_days(today)
    old = "today" if days == 0 else f"{days} day{'s' if days != 1 else ''} old"
    return f"prices as of {as_of().isoformat()} ({old})"
