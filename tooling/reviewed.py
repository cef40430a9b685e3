"""`deploy --plan FILE`: apply only what was reviewed.

The plan's JSON (tooling/plan.py) carries a hash per stack of what a deploy applies: the template, its
parameters, the ownership tags, and the image tags when the plan named them. Before anything is
touched, every stack the deploy would apply is hashed the same way and compared; any difference
refuses the whole deploy, naming the stack and the part that differs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tooling.ownership import ownership_tags
from tooling.plan import stack_hash, whole_hash
from tooling.snapshot import StackState

PARTS = ("template", "parameters", "tags", "image_tags")


class Unreadable(Exception):
    pass


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        stacks = data["stacks"]
        recorded = data["hash"]
        computed = whole_hash(
            [(s["stack_name"], s.get("region", ""), s["action"], (s.get("hash") or {}).get("stack") or "")
             for s in stacks]
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Unreadable(f"{path}: not the JSON of `deployctl plan --format json` ({exc})") from None
    if computed != recorded:
        raise Unreadable(f"{path}: its stacks do not match its hash: the file was edited after planning")
    return data


def refusals(
    reviewed: dict[str, Any], states: list[StackState], *, repository: str,
    image_tags: Mapping[str, str], stack_image_tags: Mapping[str, Mapping[str, str]],
    default_image_tags: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:  # fmt: skip
    """Why each stack differs from the reviewed plan (empty: apply it).

    Where the plan showed tags the checkout chose (a new stack, a new engine.version), the deploy's
    own choice for those parameters must be the same: a change to the images' inputs after the
    review is a difference like any other."""
    planned = {
        (s["stack_name"], s.get("region", "")): s for s in reviewed["stacks"] if s["action"] != "delete"
    }
    out = []
    for state in states:
        entry = planned.get((state.stack_name, state.region))
        if entry is None:
            out.append(f"{state.stack_name} ({state.region}): not in the reviewed plan")
            continue
        if entry["action"] == "invalid" or not entry.get("hash"):
            out.append(f"{state.stack_name}: the reviewed plan has it {entry['action']}, not deployable")
            continue
        if not state.valid or state.text is None:
            out.append(f"{state.stack_name}: does not render now, though the plan reviewed it")
            continue
        images = {**image_tags, **stack_image_tags.get(state.stack_name, {})}
        chosen = (default_image_tags or {}).get(state.stack_name, {})
        for key in entry.get("image_tags") or {}:
            if key not in images and key in chosen:
                images[key] = chosen[key]
        reviewed_hash = entry["hash"]
        now = stack_hash(
            state.text, ownership_tags(state, repository), images if reviewed_hash.get("image_tags") else None
        )
        differs = [part for part in PARTS if reviewed_hash.get(part) != now[part]]
        if differs:
            out.append(
                f"{state.stack_name}: differs from the reviewed plan in its "
                f"{', '.join(p.replace('_', ' ') for p in differs)}"
                f" (reviewed {str(reviewed_hash.get(differs[0]))[:12]}, now {str(now[differs[0]])[:12]});"
                " plan again and review that"
            )
    return out


def deletions(reviewed: dict[str, Any]) -> set[tuple[str, str]]:
    return {(s["stack_name"], s.get("region", "")) for s in reviewed["stacks"] if s["action"] == "delete"}
