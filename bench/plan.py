"""`make bench`: plan speed with 200 deployments, against the naive way (cfn-lint's CLI per template).

Cold is a new checkout with an empty cache: every deployment rendered and every template linted (the
lint cache is keyed on cfn-lint's version and our rules, so nothing says an earlier lint still holds;
the benchmark checks all 200 were linted). Warm is the same plan again, one-change a plan after
editing one file. Each runs `deployctl plan --against git:HEAD` as a user would, in a scratch git
repository holding this code and 200 generated deployments across the four targets.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
COUNT = 200
NAIVE_SAMPLE = 6
DEPLOYCTL = str(Path(sys.executable).parent / "deployctl")

SCALE = "scaling: {{min: 1, max: {max}, target: {{{target}}}}}\n"
TARGETS = [
    "model: {{id: meta-llama/Llama-3.1-8B-Instruct}}\nengine: {{type: vllm}}\n"
    "compute: {{service: ecs-gpu, instance_type: {gpu}}}\n"
    + SCALE.replace("{target}", "requests_per_target: 100"),
    "model: {{id: mistralai/Mistral-7B-Instruct-v0.3}}\nengine: {{type: vllm}}\n"
    "compute: {{service: ec2, instance_type: {gpu}, spot: true}}\n"
    + SCALE.replace("{target}", "queue_depth_per_task: 8"),
    "model: {{id: Qwen/Qwen2.5-7B-Instruct}}\nengine: {{type: vllm}}\n"
    "compute: {{service: sagemaker, instance_type: ml.{gpu}}}\n"
    + SCALE.replace("{target}", "invocations_per_instance: 50"),
    "model: {{id: gpt-4o}}\n"
    "engine: {{type: external, base_url: 'https://api.openai.com/v1', provider_key_secret: team/openai}}\n"
    "compute: {{service: ecs-fargate, cpu: 1024, memory: 2048}}\n"
    + SCALE.replace("{target}", "cpu_percent: 70"),
]
GPUS = ["g5.xlarge", "g5.2xlarge", "g6.xlarge", "g4dn.xlarge"]


def make_repo(folder: Path) -> None:
    # The image inputs too: a plan names each stack's image tags by the commit that last changed them.
    for name in ("templates", "tooling", "inference_server"):
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "Dockerfile.vllm", folder / "Dockerfile.vllm")
    for index in range(COUNT):
        env = ("dev", "staging", "prod", "qa")[index % 4]
        body = TARGETS[index % len(TARGETS)]
        text = (
            f"name: svc-{index:03d}\nowner: team@example.com\nregion: us-east-1\n"
            + body.format(gpu=GPUS[(index // 4) % len(GPUS)], max=2 + index % 5)
            + "network: {public: false}\n"
        )
        path = folder / "deployments" / env / f"svc-{index:03d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", "-c", "user.email=b@x", "-c", "user.name=b", *args], cwd=folder, check=True)


def plan(folder: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [DEPLOYCTL, "--root", str(folder), "plan", "--against", "git:HEAD", "--format", "json"],
        cwd=folder, capture_output=True, text=True, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:] or done.stdout[-2000:])
    return elapsed


def naive(folder: Path) -> float:
    """cfn-lint's own command once per template, as a hand-rolled pipeline would run it (one core)."""
    out = folder / "naive"
    subprocess.run(
        [DEPLOYCTL, "--root", str(folder), "render", "--no-lint", "--out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    files = sorted(out.rglob("*.json"))[:NAIVE_SAMPLE]
    times = []
    for path in files:
        started = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "cfn-lint"), str(path)], capture_output=True, check=False
        )
        times.append(time.perf_counter() - started)
    return statistics.mean(times) * COUNT


def lint_entries(folder: Path) -> int:
    """How many templates the cache holds lint findings for (entries of the lint cache: `errors` only)."""
    count = 0
    for path in (folder / ".deployctl-cache").rglob("*.json"):
        if list(json.loads(path.read_text(encoding="utf-8"))) == ["errors"]:
            count += 1
    return count


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="deployctl-bench-") as scratch:
        folder = Path(scratch)
        make_repo(folder)
        shutil.rmtree(folder / ".deployctl-cache", ignore_errors=True)
        cold = plan(folder)
        linted = lint_entries(folder)
        if linted != COUNT:
            raise RuntimeError(f"the cold plan linted {linted} templates, not all {COUNT}")
        warm = min(plan(folder) for _ in range(3))
        changed = folder / "deployments/dev/svc-000.yaml"
        changed.write_text(changed.read_text().replace("max: 2", "max: 3"), encoding="utf-8")
        one = plan(folder)
        naive_cold = naive(folder)
    rows = [
        (f"cold plan: new checkout, empty cache, all {linted} templates linted", cold, 30.0),
        ("warm plan (nothing changed)", warm, 2.0),
        ("plan after one file changed", one, 3.0),
        (f"naive: cfn-lint CLI per template (mean of {NAIVE_SAMPLE} × 200)", naive_cold, None),
    ]
    table = Table(title="deployctl plan --against git:HEAD, 200 deployments, 2 cores", title_justify="left")
    for column in ("measure", "seconds", "target", "result"):
        table.add_column(column)
    failed = False
    for label, seconds, target in rows:
        ok = target is None or seconds <= target
        failed |= not ok
        table.add_row(label, f"{seconds:.2f}", "" if target is None else f"≤ {target:g}",
                      "" if target is None else ("[green]pass[/]" if ok else "[red]miss[/]"))  # fmt: skip
    speedup = naive_cold / cold
    failed |= speedup < 10
    table.add_row(
        "naive cold / our cold",
        f"{speedup:.1f}×",
        "≥ 10×",
        "[green]pass[/]" if speedup >= 10 else "[red]miss[/]",
    )
    Console(width=140).print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
