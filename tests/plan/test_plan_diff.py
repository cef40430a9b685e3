"""The offline diff: resource by resource, property by property, replacement as CloudFormation decides it."""

from __future__ import annotations

from tooling.diff import diff_templates


def subnet(cidr: object, **extra: object) -> dict:
    return {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": cidr, **extra}}


def test_add_remove_and_unchanged() -> None:
    before = {"Resources": {"A": subnet("10.0.0.0/24"), "B": subnet("10.0.1.0/24")}}
    after = {"Resources": {"A": subnet("10.0.0.0/24"), "C": subnet("10.0.2.0/24")}}
    changes = {c.logical_id: c for c in diff_templates(before, after, "us-east-1")}
    assert set(changes) == {"B", "C"}
    assert (changes["B"].action, changes["C"].action) == ("remove", "add")
    assert changes["C"].properties[0].path == "Properties"  # a new resource shows whole


def test_a_create_only_property_replaces() -> None:
    (change,) = diff_templates(
        {"Resources": {"A": subnet("10.0.0.0/24")}}, {"Resources": {"A": subnet("10.0.9.0/24")}}, "us-east-1"
    )
    assert (change.action, change.replacement) == ("modify", "true")
    assert [(p.path, p.before, p.after) for p in change.properties] == [
        ("Properties.CidrBlock", "10.0.0.0/24", "10.0.9.0/24")
    ]


def test_an_updatable_property_does_not_replace() -> None:
    before = {"Resources": {"A": subnet("10.0.0.0/24", MapPublicIpOnLaunch=False)}}
    after = {"Resources": {"A": subnet("10.0.0.0/24", MapPublicIpOnLaunch=True)}}
    (change,) = diff_templates(before, after, "us-east-1")
    assert change.replacement == "false"


def test_a_create_only_value_known_only_at_deploy_is_conditional() -> None:
    before = {"Resources": {"A": subnet({"Fn::Select": [0, {"Fn::GetAZs": ""}]})}}
    after = {"Resources": {"A": subnet({"Fn::Select": [1, {"Fn::GetAZs": ""}]})}}
    (change,) = diff_templates(before, after, "us-east-1")
    assert change.replacement == "conditional"


def test_a_new_type_under_the_same_name_replaces() -> None:
    before = {"Resources": {"A": subnet("10.0.0.0/24")}}
    after = {"Resources": {"A": {"Type": "AWS::SNS::Topic", "Properties": {}}}}
    (change,) = diff_templates(before, after, "us-east-1")
    assert (change.replacement, change.properties[0].path) == ("true", "Type")


def test_lists_compare_by_position_or_whole() -> None:
    def sg(rules: list) -> dict:
        return {
            "Resources": {
                "G": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"SecurityGroupIngress": rules}}
            }
        }

    one = [{"CidrIp": "10.0.0.0/8", "FromPort": 443}]
    (change,) = diff_templates(sg(one), sg([{"CidrIp": "10.0.0.0/16", "FromPort": 443}]), "us-east-1")
    assert [p.path for p in change.properties] == ["Properties.SecurityGroupIngress[0].CidrIp"]
    (change,) = diff_templates(sg(one), sg([*one, {"CidrIp": "10.1.0.0/16", "FromPort": 443}]), "us-east-1")
    assert [p.path for p in change.properties] == ["Properties.SecurityGroupIngress"]


def test_outputs_and_unknown_types() -> None:
    before = {
        "Resources": {"X": {"Type": "Custom::Thing", "Properties": {"A": 1}}},
        "Outputs": {"U": {"Value": "a"}},
    }
    after = {
        "Resources": {"X": {"Type": "Custom::Thing", "Properties": {"A": 2}}},
        "Outputs": {"U": {"Value": "b"}},
    }
    changes = {c.logical_id: c for c in diff_templates(before, after, "us-east-1")}
    assert changes["X"].replacement == "false"  # no schema to predict from: not claimed
    assert changes["Outputs.U"].properties[0].before == "a"
