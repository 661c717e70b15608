"""The Kubernetes manifests of docs/ are valid Kubernetes and run the solcap they mean to.

Every YAML document with an ``apiVersion`` in docs/serve.md (the serve StatefulSet and its
headless Service) and docs/fleet.md (the indexed harvest Job) is validated against the
Kubernetes 1.28 … newest JSON schemas that ``kubernetes-validate`` ships (offline), in strict
mode, where an unknown or misspelt field is an error. Then what a schema cannot know: the
shard count in the arguments equals the number of pods, and the arguments, expanded the way
Kubernetes (``$(VAR)``) or the shell (``${VAR}``) would for each pod, are ones solcap's own
parser accepts, each pod getting its own shard.
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions
from packaging.version import Version

from solcap.cli import build_parser
from solcap.inventory import Shard, parse_shard
from tests.deploy.docblocks import blocks

pytestmark = pytest.mark.timeout(120)

OLDEST = Version("1.28")  # the pod-index label the StatefulSet reads is 1.28+
VERSIONS = [v for v in all_versions() if Version(v) >= OLDEST]


def manifests(doc: str) -> list[dict[str, Any]]:
    found = []
    for text in blocks(doc, "yaml"):
        for item in yaml.safe_load_all(text):
            if isinstance(item, dict) and "apiVersion" in item:
                found.append(item)
    return found


def by_kind(doc: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for item in manifests(doc):
        assert item["kind"] not in found, f"docs/{doc}: two {item['kind']}s"
        found[item["kind"]] = item
    return found


ALL = [(doc, item) for doc in ("serve.md", "fleet.md") for item in manifests(doc)]


def test_the_docs_have_the_manifests_this_file_checks() -> None:
    assert sorted(by_kind("serve.md")) == ["Service", "StatefulSet"]
    assert sorted(by_kind("fleet.md")) == ["Job"]
    assert len(VERSIONS) >= 5, VERSIONS


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("doc", "item"), ALL, ids=[f"{d}:{i['kind']}" for d, i in ALL])
def test_manifest_is_valid_in_strict_mode(doc: str, item: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(item, version, strict=True)


def test_strict_validation_refuses_a_misspelt_field() -> None:
    """The check above can fail: a typo deep in the pod template is caught."""
    broken = copy.deepcopy(by_kind("serve.md")["StatefulSet"])
    broken["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def _k8s_expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion in command and args (an unknown name stays as is)."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), text)


def _mounted(words: list[str], container: dict[str, Any], tmp: Path) -> list[str]:
    """``words`` with each volume's mount path moved under ``tmp`` (the pod's filesystem),
    so solcap's parser, which checks that directories exist, sees what the pod would."""
    out = []
    for word in words:
        for mount in container["volumeMounts"]:
            path = mount["mountPath"]
            if word == path or word.startswith(f"{path}/"):
                local = tmp / mount["name"]
                local.mkdir(mode=0o700, exist_ok=True)
                word = str(local) + word[len(path) :]
        out.append(word)
    return out


def test_statefulset_pods_each_serve_their_own_shard_of_replicas(tmp_path: Path) -> None:
    sts = by_kind("serve.md")["StatefulSet"]
    assert by_kind("serve.md")["Service"]["metadata"]["name"] == sts["spec"]["serviceName"]
    replicas = sts["spec"]["replicas"]
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    source = env["SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert source == "metadata.labels['apps.kubernetes.io/pod-index']"
    assert container["command"] == ["solcap"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert env["SOLCAP_SERVE_DIR"]["value"].startswith(tuple(f"{m}/" for m in mounts))
    shards = set()
    for ordinal in range(replicas):
        argv = [_k8s_expand(a, {"SHARD_INDEX": str(ordinal)}) for a in container["args"]]
        assert "--root" in argv and argv[argv.index("--root") + 1] in mounts
        args = build_parser().parse_args(_mounted(argv, container, tmp_path))
        assert args.func.__name__ == "cmd_serve"
        assert args.shard == Shard(ordinal, replicas)
        shards.add(str(args.shard))
    assert len(shards) == replicas


def test_indexed_job_pods_each_harvest_their_own_shard_of_completions(tmp_path: Path) -> None:
    job = by_kind("fleet.md")["Job"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    (container,) = spec["template"]["spec"]["containers"]
    assert container["command"] == ["sh", "-c"]
    (script,) = container["args"]
    for index in range(spec["completions"]):
        words = shlex.split(script.replace("${JOB_COMPLETION_INDEX}", str(index)))
        assert words[:2] == ["exec", "solcap"]
        args = build_parser().parse_args(_mounted(words[2:], container, tmp_path))
        assert args.func.__name__ == "cmd_harvest"
        assert parse_shard(args.shard) == Shard(index, spec["completions"])
        assert str(args.summary).endswith(f"summary-{index}.json")
