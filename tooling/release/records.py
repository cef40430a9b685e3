"""Release records: what each successful release left running, kept in the environment's artifacts bucket.

A record holds, per stack, the template exactly as deployed, its parameter values, the image tags and
the hashes that identify them, so a rollback redeploys those bytes and never renders old files with new
code. Objects, in the bucket of the environment's first region (`home_region`):

- `releases/<env>/<UTC time>-<commit>.json`: one per release, never overwritten (`If-None-Match: *`);
- `releases/<env>/latest.json`: names the newest record; replaced only if it is still the one this
  release read before it began (`If-Match: <ETag>`), so two releases racing past the workflow's
  concurrency group cannot both become "latest".
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html

The bucket is versioned (templates/bootstrap.py), so an overwritten or deleted pointer can be recovered.
A missing `latest.json` reads as NoSuchKey only with s3:ListBucket on the bucket (without it S3 answers
403: https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html), which the deploy role has for
its environment's prefix.

Parameter values are recorded as DescribeStacks returns them. A NoEcho parameter comes back masked
(`****`: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html),
so recording it would either store a mask that a rollback deploys as the value, or need the secret
itself: a template with one is refused here (and by lint rule E9055) rather than recorded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from templates.bootstrap import RELEASE_RECORDS
from tooling import aws
from tooling import cloudformation as cf

FORMAT = 1
PREFIX = RELEASE_RECORDS  # the prefix the bucket policy and the deploy roles name
MASK = "****"


class RecordError(Exception):
    """The records cannot be read or written as they must be; the message says what to do."""


class Conflict(RecordError):
    """Another release of the environment was recorded after this one read the latest record."""


@dataclass
class StackRecord:
    stack_name: str
    name: str  # the deployment's name (the ownership tags are computed from it, its file and env)
    file: str
    region: str
    template: str  # the template as deployed (compact JSON, sorted keys: what CloudFormation was sent)
    parameters: dict[str, str]  # every parameter the template declares without a default
    image_tags: dict[str, str]
    stack_hash: str  # the stack's deployctl:template-hash tag (template, parameters, ownership tags)
    template_sha256: str = ""
    parameters_sha256: str = ""

    def __post_init__(self) -> None:
        self.template_sha256 = self.template_sha256 or sha256(self.template)
        self.parameters_sha256 = self.parameters_sha256 or sha256(json.dumps(self.parameters, sort_keys=True))


@dataclass
class Record:
    environment: str
    commit: str
    repository: str
    created: str  # ISO 8601, UTC
    stacks: dict[str, StackRecord] = field(default_factory=dict)
    key: str = ""  # where it is stored (not part of the object)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("key")
        return {"format": FORMAT, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any], key: str = "") -> Record:
        if data.get("format") != FORMAT:
            raise RecordError(f"{key}: record format {data.get('format')!r}; this deployctl reads {FORMAT}")
        stacks = {name: StackRecord(**s) for name, s in data["stacks"].items()}
        return cls(data["environment"], data["commit"], data["repository"], data["created"], stacks, key)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def compact(template: str) -> str:
    return json.dumps(json.loads(template), separators=(",", ":"), sort_keys=True)


def recorded_parameters(template: str, stack: dict[str, Any]) -> dict[str, str]:
    """The deployed values of the parameters that have no default (those with one are in the template).

    Raises RecordError for a NoEcho parameter, whose value DescribeStacks masks."""
    declared = json.loads(template).get("Parameters", {})
    deployed = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    secret = sorted(k for k, spec in declared.items() if str(spec.get("NoEcho", "")).lower() == "true")
    if secret:
        raise RecordError(
            f"{stack['StackName']}: NoEcho parameter(s) {', '.join(secret)}: their values cannot be recorded "
            "for a rollback (DescribeStacks returns them masked); pass secrets through Secrets Manager"
        )
    values = {}
    for key, spec in sorted(declared.items()):
        if "Default" in spec:
            continue
        if key not in deployed or _masked(deployed[key]):
            raise RecordError(f"{stack['StackName']}: no recordable value for parameter {key}")
        values[key] = deployed[key]
    return values


def _masked(value: str) -> bool:
    # The User Guide shows the mask as asterisks without saying how many: any all-asterisk value is one.
    return bool(value) and set(value) == {MASK[0]}


def record_key(environment: str, commit: str, now: datetime) -> str:
    return f"{PREFIX}/{environment}/{now.strftime('%Y%m%dT%H%M%SZ')}-{commit}.json"


def latest_key(environment: str) -> str:
    return f"{PREFIX}/{environment}/latest.json"


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class Store:
    """The records of one environment in one bucket."""

    def __init__(self, environment: str, region: str, bucket: str | None = None) -> None:
        self.environment = environment
        self.region = region
        self.bucket = bucket or cf.artifacts_bucket(aws.account_id(region), region)
        self.s3 = aws.client("s3", region)

    def latest(self) -> tuple[Record | None, str | None]:
        """The newest record and the ETag of the pointer to it (None, None: no release yet)."""
        try:
            got = self.s3.get_object(Bucket=self.bucket, Key=latest_key(self.environment))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None, None
            if _code(exc) == "NoSuchBucket":
                raise RecordError(
                    f"the artifacts bucket {self.bucket} does not exist in {self.region}: run "
                    "`deployctl bootstrap` for this account"
                ) from None
            raise RecordError(
                f"s3://{self.bucket}/{latest_key(self.environment)}: {cf.describe_error(exc)}"
            ) from None
        pointer = json.loads(got["Body"].read())
        return self.read(pointer["key"]), got["ETag"]

    def read(self, key: str) -> Record:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise RecordError(f"s3://{self.bucket}/{key}: {cf.describe_error(exc)}") from None
        return Record.from_json(json.loads(body), key)

    def write(self, record: Record, expected: str | None) -> str:
        """Store the record, then point `latest` at it if the pointer is still `expected` (its ETag;
        None: there was none). Raises Conflict when another release got there first."""
        key = record_key(record.environment, record.commit, datetime.fromisoformat(record.created))
        body = json.dumps(record.to_json(), indent=1, sort_keys=True).encode()
        self._put(key, body, IfNoneMatch="*")
        pointer = json.dumps({"key": key, "commit": record.commit, "created": record.created}).encode()
        condition = {"IfMatch": expected} if expected else {"IfNoneMatch": "*"}
        self._put(latest_key(record.environment), pointer, **condition)
        record.key = key
        return key

    def _put(self, key: str, body: bytes, **condition: str) -> None:
        try:
            self.s3.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType="application/json", **condition
            )
        except ClientError as exc:
            # 412: the precondition failed; 409: a conflicting write raced this one (the guide above).
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                raise Conflict(
                    f"another release of {self.environment} was recorded while this one ran "
                    f"(s3://{self.bucket}/{key} changed); run the release again"
                ) from None
            raise RecordError(f"s3://{self.bucket}/{key}: {cf.describe_error(exc)}") from None
