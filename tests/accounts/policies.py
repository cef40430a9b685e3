"""A small evaluator of IAM policy documents, for the tests: no IAM policy simulator runs offline.

moto has no SimulatePrincipalPolicy (nor any policy evaluation in server mode), and AWS's simulator is an
online API, so the account stack's policies are evaluated here with IAM's documented logic for what they
use: an explicit Deny wins, else any Allow, else denied; Action and Resource match with `*`/`?`
wildcards (actions case-insensitively); conditions are ANDed across operators and keys, ORed across a
key's values; StringEquals, StringLike, ArnLike, ArnEquals and their negations (StringNotEquals,
StringNotLike, ArnNotLike, ArnNotEquals: true when no value matches, and when the key is absent);
NotResource (the statement applies to every resource but those). Any other operator fails the test
rather than being guessed.
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

ACCOUNT = "123456789012"
POSITIVE = {"StringEquals", "StringLike", "ArnLike", "ArnEquals"}
NEGATED = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike", "ArnNotLike": "ArnLike",
           "ArnNotEquals": "ArnEquals"}  # fmt: skip
OPERATORS = POSITIVE | set(NEGATED)


def plain(value: Any, region: str = "us-east-1", refs: dict[str, str] | None = None) -> Any:
    """A rendered template fragment with Fn::Sub/Ref/Fn::If resolved as AWS would in one account."""
    refs = {"AWS::AccountId": ACCOUNT, "AWS::Partition": "aws", "AWS::Region": region, **(refs or {})}
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"}:
            sub = value["Fn::Sub"]
            text, extra = (sub, {}) if isinstance(sub, str) else sub
            names = {**refs, **{k: plain(v, region, refs) for k, v in extra.items()}}
            for name, resolved in names.items():
                text = text.replace("${" + name + "}", str(resolved))
            return text
        if set(value) == {"Ref"}:
            return refs.get(value["Ref"], f"ref:{value['Ref']}")
        if set(value) == {"Fn::GetAtt"}:
            return f"getatt:{'.'.join(value['Fn::GetAtt'])}"
        if set(value) == {"Fn::If"}:
            return plain(value["Fn::If"][1], region, refs)
        return {k: plain(v, region, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v, region, refs) for v in value]
    return value


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches(pattern: str, value: str, *, case: bool = True) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _condition_holds(condition: dict[str, dict[str, Any]], context: dict[str, Any]) -> bool:
    for operator, tests in condition.items():
        assert operator in OPERATORS, f"the test evaluator does not know {operator}"
        negated = operator in NEGATED
        positive = NEGATED.get(operator, operator)
        for key, wanted in tests.items():
            if key not in context:
                if negated:
                    continue  # a negated operator holds when the key is absent
                return False  # a missing key never matches a positive operator
            actual = _list(context[key])
            wildcard = positive in ("StringLike", "ArnLike")
            matched = any(
                (_matches(str(w), str(a)) if wildcard else str(w) == str(a))
                for w in _list(wanted)
                for a in actual
            )
            if matched == negated:
                return False
    return True


def _applies(statement: dict[str, Any], action: str, resource: str, context: dict[str, Any]) -> bool:
    if not any(_matches(a, action, case=False) for a in _list(statement.get("Action", []))):
        return False
    if "NotResource" in statement:
        if any(_matches(r, resource) for r in _list(statement["NotResource"])):
            return False
    elif not any(_matches(r, resource) for r in _list(statement.get("Resource", "*"))):
        return False
    return _condition_holds(statement.get("Condition", {}), context)


def allowed(documents: list[dict], action: str, resource: str, context: dict[str, Any] | None = None) -> bool:
    """Whether identity policies `documents` allow `action` on `resource` in `context`."""
    context = context or {}
    statements = [s for d in documents for s in _list(d["Statement"])]
    if any(s["Effect"] == "Deny" and _applies(s, action, resource, context) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _applies(s, action, resource, context) for s in statements)


def trusts(trust: dict, action: str, principal: dict, context: dict[str, Any]) -> bool:
    """Whether a role's trust policy lets `principal` do `action` (sts:AssumeRole...) in `context`."""
    for statement in _list(trust["Statement"]):
        if statement["Effect"] != "Allow" or statement["Principal"] != principal:
            continue
        if _matches(statement["Action"], action, case=False) and _condition_holds(
            statement.get("Condition", {}), context
        ):
            return True
    return False


def size(document: dict) -> int:
    return len(json.dumps(document, separators=(",", ":")))
