"""The few AWS calls an `ec2` instance makes while it boots, with nothing but Python's standard library.

Shipped inline in the user data and run by the host's python3. The ECS-optimised AL2023 GPU AMI is
AL2023 *minimal* plus Docker, the ECS agent and a handful of packages: it has no AWS CLI and no
aws-cfn-bootstrap (so no cfn-signal), but cloud-init, which runs the user data, is Python 3, so
python3 is always there (https://github.com/aws/amazon-ecs-ami, al2023.pkr.hcl and variables.pkr.hcl).

Credentials come from IMDSv2 (PUT a token, then GET the role's credentials:
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instance-metadata-retrieval.html); requests are
signed with Signature Version 4 as the AWS General Reference documents it. Like every AWS SDK, the
standard variables AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN and
AWS_EC2_METADATA_SERVICE_ENDPOINT override the defaults.

Exit status 0 on success, 1 on a failure worth retrying (the caller retries), 2 on a usage error.
"""

import base64
import contextlib
import datetime
import hashlib
import hmac
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 10
USAGE = (
    "usage: boot_aws.py ecr-password | secret NAME | signal SUCCESS|FAILURE | reachable [URL] | ready URL\n"
)


def imds(path, token=None, method="GET"):
    base = os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254").rstrip("/")
    headers = {"X-aws-ec2-metadata-token": token} if token else {}
    if method == "PUT":
        headers["X-aws-ec2-metadata-token-ttl-seconds"] = "300"
    request = urllib.request.Request(base + path, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return response.read().decode()


def imds_token():
    return imds("/latest/api/token", method="PUT")


def credentials():
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        return {
            "AccessKeyId": os.environ["AWS_ACCESS_KEY_ID"],
            "SecretAccessKey": os.environ["AWS_SECRET_ACCESS_KEY"],
            "Token": os.environ.get("AWS_SESSION_TOKEN", ""),
        }
    token = imds_token()
    role = imds("/latest/meta-data/iam/security-credentials/", token).split()[0]
    return json.loads(imds("/latest/meta-data/iam/security-credentials/" + role, token))


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(method, url, region, service, headers, body, creds, now):
    """SigV4 headers for a request (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html)."""
    parts = urllib.parse.urlsplit(url)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    signed = dict((k.lower(), v.strip()) for k, v in headers.items())
    signed["host"] = parts.netloc
    signed["x-amz-date"] = stamp
    if creds.get("Token"):
        signed["x-amz-security-token"] = creds["Token"]
    names = sorted(signed)
    query = "&".join(
        sorted(
            urllib.parse.quote(k, safe="-_.~") + "=" + urllib.parse.quote(v, safe="-_.~")
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        )
    )
    canonical = "\n".join(
        [
            method,
            urllib.parse.quote(parts.path or "/", safe="/-_.~"),
            query,
            "".join(name + ":" + signed[name] + "\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = "/".join([day, region, service, "aws4_request"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + creds["SecretAccessKey"]).encode()
    for part in (day, region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        "AWS4-HMAC-SHA256 Credential=" + creds["AccessKeyId"] + "/" + scope
        + ", SignedHeaders=" + ";".join(names) + ", Signature=" + signature
    )  # fmt: skip
    return signed


def endpoint(host_prefix):
    region = os.environ["AWS_REGION"]
    url = os.environ.get("AWS_ENDPOINT_URL") or (
        "https://" + host_prefix + "." + region + "." + os.environ.get("AWS_URL_SUFFIX", "amazonaws.com")
    )
    return url.rstrip("/") + "/"


def call(service, host_prefix, headers, body):
    region = os.environ["AWS_REGION"]
    url = endpoint(host_prefix)
    now = datetime.datetime.now(datetime.timezone.utc)
    signed = sign("POST", url, region, service, headers, body, credentials(), now)
    request = urllib.request.Request(url, data=body, method="POST", headers=signed)
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return response.read().decode()


def json_call(service, host_prefix, target, payload):
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
    return json.loads(call(service, host_prefix, headers, json.dumps(payload).encode()))


def ecr_password():
    data = json_call("ecr", "api.ecr", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken", {})
    token = base64.b64decode(data["authorizationData"][0]["authorizationToken"]).decode()
    return token.split(":", 1)[1]


def secret(name):
    return json_call("secretsmanager", "secretsmanager", "secretsmanager.GetSecretValue", {"SecretId": name})[
        "SecretString"
    ]


def signal(status):
    """SignalResource for this instance (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_SignalResource.html)."""
    token = imds_token()
    form = {
        "Action": "SignalResource",
        "Version": "2010-05-15",
        "StackName": os.environ["STACK_NAME"],
        "LogicalResourceId": os.environ["LOGICAL_ID"],
        "UniqueId": imds("/latest/meta-data/instance-id", token),
        "Status": status,
    }
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    call("cloudformation", "cloudformation", headers, urllib.parse.urlencode(form).encode())
    return ""


def reachable(url=None):
    """Any HTTP answer (a 4xx too; a timeout is not) means the route out exists; default: ECR's API."""
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(url or endpoint("api.ecr"), timeout=TIMEOUT).close()
    return ""


def ready(url):
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        if response.status != 200:
            raise OSError("not ready: " + str(response.status))
    return ""


COMMANDS = {
    "ecr-password": ecr_password,
    "secret": secret,
    "signal": signal,
    "reachable": reachable,
    "ready": ready,
}


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        sys.stderr.write(USAGE)
        return 2
    try:
        out = COMMANDS[argv[0]](*argv[1:])
    except (OSError, ValueError, KeyError) as exc:  # network, HTTP and parse errors: the caller retries
        sys.stderr.write("boot_aws " + argv[0] + ": " + exc.__class__.__name__ + ": " + str(exc) + "\n")
        return 1
    if out:
        sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
