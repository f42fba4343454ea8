"""deploy/kubernetes/: the kustomize base that runs the image with the SSH transport to a Mac.

The base is rendered offline (tests/deploy/kustomize_render.py: exactly the kustomize subset it uses;
compared with ``kubectl kustomize`` where kubectl is installed), every object is validated
against Kubernetes' published schemas (the ``kubernetes-validate`` package, strict), and the
settings that make it safe and working are checked against their sources of truth: the
Dockerfile (user, port, state directory), vm_operator/config.py (the variables it reads), ssh's
own key-permission check, and a real operator process given the pod's environment and files.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from certificates import https_request, server_pair, trusting
from conftest import REPO_ROOT
from kubernetes_validate import utils as kubernetes_validate
from kustomize_render import (
    Generator,
    Manifest,
    UnsupportedKustomization,
    generate,
    name_hash,
    parse_kustomization,
    render,
)
from sshd_env import free_port

from vm_operator.config import load_config
from vm_operator.tart.ssh_settings import parse_target

BASE = REPO_ROOT / "deploy" / "kubernetes"
DOCKERFILE = REPO_ROOT / "docker" / "vm-operator" / "Dockerfile"
SECRET_FILES = ("id_ed25519", "known_hosts", "token", "cert.pem", "key.pem")


# --- facts from the sources of truth -------------------------------------------------------


@dataclass(frozen=True)
class ImageFacts:
    """What docker/vm-operator/Dockerfile says about the user, port and state directory."""

    uid: int
    gid: int
    port: int
    state_dir: str


def image_facts() -> ImageFacts:
    text = DOCKERFILE.read_text()

    def find(pattern: str) -> str:
        match = re.search(pattern, text, re.MULTILINE)
        assert match, f"{pattern!r} not found in {DOCKERFILE}"
        return match.group(1)

    uid, gid = int(find(r"^ARG VM_OPERATOR_UID=(\d+)")), int(find(r"^ARG VM_OPERATOR_GID=(\d+)"))
    assert find(r"^USER (\S+)") == "${VM_OPERATOR_UID}:${VM_OPERATOR_GID}"
    port = int(find(r"^EXPOSE (\d+)"))
    assert int(find(r"VM_OPERATOR_PORT=(\d+)")) == port
    return ImageFacts(uid, gid, port, find(r"VM_OPERATOR_STATE_DIR=(\S+)"))


class RecordingEnv(Mapping[str, str]):
    """An environment holding only ``given`` that notes every name looked up in it."""

    def __init__(self, given: dict[str, str] | None = None) -> None:
        self.given = given or {}
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self.given[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.given)

    def __len__(self) -> int:
        return len(self.given)


def variables_config_reads() -> set[str]:
    """The environment variables vm_operator/config.py reads, observed, not listed by hand:
    once with nothing set, once with the SSH transport on (its settings are read only then)."""
    asked: set[str] = set()
    for given in ({}, {"VM_OPERATOR_TART_SSH": "admin@mac.example"}):
        env = RecordingEnv(given)
        load_config([], env)
        asked |= env.asked
    return asked


# --- rendering -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    directory: Path  # a copy of the base, with throw-away secret files in secrets/
    token: str
    objects: list[Manifest]

    def one(self, kind: str) -> Manifest:
        found = [o for o in self.objects if o["kind"] == kind]
        assert len(found) == 1, f"expected one {kind}, got {len(found)}"
        return found[0]

    def named(self, kind: str, name: str) -> Manifest:
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
        return found[0]


def copy_with_secrets(target: Path) -> str:
    """The base as a user would have it: the three secret files created (test values)."""
    shutil.copytree(BASE, target)
    token = secrets.token_urlsafe(32)
    (target / "secrets" / "id_ed25519").write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nTEST VALUE, NOT A KEY\n"
        "-----END OPENSSH PRIVATE KEY-----\n")
    (target / "secrets" / "known_hosts").write_text(
        "192.0.2.10 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3QtdmFsdWUtbm90LWEta2V5LTAwMDAw\n")
    (target / "secrets" / "token").write_text(token + "\n")
    cert, key = server_pair(target / "pki")  # what `vm-operator tls init` writes there
    shutil.move(cert, target / "secrets" / "cert.pem")
    shutil.move(key, target / "secrets" / "key.pem")
    shutil.rmtree(target / "pki")
    return token


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    directory = tmp_path_factory.mktemp("kubernetes") / "base"
    token = copy_with_secrets(directory)
    return Rendered(directory, token, render(directory))


def pod_templates(objects: list[Manifest]) -> list[tuple[Manifest, Manifest]]:
    """(workload, pod spec) of every object that has a pod template."""
    return [(o, o["spec"]["template"]["spec"]) for o in objects
            if isinstance(o.get("spec"), dict) and "template" in o["spec"]]


def containers(pod: Manifest) -> list[Manifest]:
    return list(pod.get("containers") or []) + list(pod.get("initContainers") or [])


def env_of(rendered: Rendered, container: Manifest) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom ConfigMaps, then env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        config_map = rendered.named("ConfigMap", source["configMapRef"]["name"])
        env.update(config_map["data"])
    for var in container.get("env") or []:
        env[var["name"]] = var["value"]
    return env


def secret_files(rendered: Rendered, pod: Manifest, container: Manifest) -> dict[str, bytes]:
    """Every file a secret volume puts in the container: mount path -> content."""
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    files: dict[str, bytes] = {}
    for mount in container.get("volumeMounts") or []:
        source = volumes[mount["name"]].get("secret")
        if source is None:
            continue
        assert "items" not in source and "subPath" not in mount, "not modelled here"
        secret = rendered.named("Secret", source["secretName"])
        for key, value in secret["data"].items():
            files[f"{mount['mountPath']}/{key}"] = base64.b64decode(value)
    return files


def port_number(container: Manifest, port: int | str) -> int:
    """A probe's or Service's port, named or numbered, as the container port number."""
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    assert named, f"no container port named {port!r}"
    return int(named[0])


def operator_container(rendered: Rendered) -> tuple[Manifest, Manifest]:
    deployment = rendered.one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["vm-operator"]
    return pod, pod["containers"][0]


# --- the renderer itself -------------------------------------------------------------------


@pytest.mark.parametrize("kustomization", [
    {"resources": [], "patches": [{"path": "p.yaml"}]},
    {"commonLabels": {"a": "b"}},
    {"labels": [{"pairs": {"a": "b"}, "includeSelectors": True}]},
    {"configMapGenerator": [{"name": "c", "envs": ["c.env"]}]},
    {"secretGenerator": [{"name": "s", "files": ["k"],
                          "options": {"disableNameSuffixHash": True}}]},
    {"images": [{"name": "i", "newName": "j", "tagSuffix": "x"}]},
])
def test_the_renderer_refuses_features_it_does_not_implement(kustomization: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedKustomization):
        parse_kustomization(kustomization)


# Names printed by `kubectl kustomize` (kustomize v5.0.1, v5.5.0 and v5.6.0 agree) for these
# generators: the hash of kustomize itself, for machines without kubectl.
@pytest.mark.parametrize(("generator", "files", "expected"), [
    (Generator("ConfigMap", "vm-operator-config", (
        "VM_OPERATOR_TART_SSH=admin@192.0.2.10", "VM_OPERATOR_SSH_PORT=22",
        "VM_OPERATOR_SSH_CONNECT_TIMEOUT=5", "VM_OPERATOR_TART=tart",
        "VM_OPERATOR_MAX_RUNNING=2"), ()), {}, "vm-operator-config-262fft7mhd"),
    (Generator("Secret", "vm-operator-ssh", (), ("id_ed25519=k", "known_hosts=h")),
     {"k": b"KEY\n", "h": b"mac ssh-ed25519 AAAA\n"}, "vm-operator-ssh-7m8m7tb8b2"),
    (Generator("Secret", "vm-operator-token", (), ("token=t",)),
     {"t": b"tok-0123456789abcdef\n"}, "vm-operator-token-d26kmht584"),
    (Generator("Secret", "long", (), ("value=long",)),  # base64 past 70: lines of 70
     {"long": b"vm-operator " * 10}, "long-2fc8tc6f4h"),
    (Generator("ConfigMap", "html", ("a=<b> & c",), ()), {}, "html-hb8276m598"),  # Go escapes
])
def test_generated_names_carry_kustomizes_hash(tmp_path: Path, generator: Generator,
                                               files: dict[str, bytes], expected: str) -> None:
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    obj = generate(generator, tmp_path)
    assert obj["metadata"]["name"] == expected
    assert name_hash(obj) == expected.rsplit("-", 1)[1]


def test_the_renderer_agrees_with_kubectl_kustomize(rendered: Rendered) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the renderer is checked against kustomize's "
                    "recorded hashes only")
    out = subprocess.run([kubectl, "kustomize", str(rendered.directory)], check=False,
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    theirs = [doc for doc in yaml.safe_load_all(out.stdout) if doc is not None]

    def key(obj: Manifest) -> tuple[str, str]:
        return obj["kind"], obj["metadata"]["name"]

    assert sorted(rendered.objects, key=key) == sorted(theirs, key=key)


# --- the repository ----------------------------------------------------------------------------


def test_no_secret_is_committed_and_the_generator_files_are_ignored() -> None:
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], check=False, cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)

    tracked = git("ls-files", "--", "deploy/kubernetes/secrets").stdout.split()
    assert tracked == ["deploy/kubernetes/secrets/.gitignore"]
    spec = parse_kustomization(yaml.safe_load((BASE / "kustomization.yaml").read_text()))
    named = {source.partition("=")[2] for g in spec.generators if g.kind == "Secret"
             for source in g.files}
    assert named == {f"secrets/{name}" for name in SECRET_FILES}
    for path in named:
        assert git("check-ignore", "-q", f"deploy/kubernetes/{path}").returncode == 0, path


# --- schemas -----------------------------------------------------------------------------------


def schema_versions() -> list[str]:
    """The oldest and the newest Kubernetes whose schemas kubernetes-validate ships."""
    versions = sorted(set(kubernetes_validate.all_versions()),
                      key=lambda v: tuple(int(x) for x in v.split(".")))
    return [versions[0], versions[-1]]


@pytest.mark.parametrize("version", schema_versions())
def test_every_object_is_valid_against_the_published_schemas(rendered: Rendered,
                                                             version: str) -> None:
    kinds = sorted(o["kind"] for o in rendered.objects)
    assert kinds == ["ConfigMap", "Deployment", "Namespace", "NetworkPolicy",
                     "PersistentVolumeClaim", "Secret", "Secret", "Secret", "Service",
                     "ServiceAccount"]
    for obj in rendered.objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_strict_validation_rejects_a_misspelt_field(rendered: Rendered) -> None:
    deployment = copy.deepcopy(rendered.one("Deployment"))
    deployment["spec"]["template"]["spec"]["securityContext"]["runAsUsr"] = 10001
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, schema_versions()[-1], strict=True)


# --- the workload --------------------------------------------------------------------------------


def test_one_operator_per_mac(rendered: Rendered) -> None:
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_every_container_runs_as_the_images_user_with_least_privilege(rendered: Rendered) -> None:
    image = image_facts()
    templates = pod_templates(rendered.objects)
    assert templates, "no workload rendered"
    for workload, pod in templates:
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        pod_context = pod.get("securityContext") or {}
        assert pod.get("automountServiceAccountToken") is False, where
        assert pod_context.get("fsGroup") == image.gid, where
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(flag), (where, flag)
        for container in containers(pod):
            context = container.get("securityContext") or {}

            name = f"{where} container {container['name']}"
            # Set on the pod, the container or both (the container's wins): wherever it is
            # set it has this value, and it is set somewhere.
            for field, expected in (("runAsNonRoot", True), ("runAsUser", image.uid),
                                    ("runAsGroup", image.gid),
                                    ("seccompProfile", {"type": "RuntimeDefault"})):
                values = [c[field] for c in (pod_context, context) if field in c]
                assert values and all(v == expected for v in values), (name, field, values)
            assert context.get("readOnlyRootFilesystem") is True, name
            assert context.get("allowPrivilegeEscalation") is False, name
            assert context.get("privileged") in (None, False), name
            assert context.get("capabilities") == {"drop": ["ALL"]}, name
            resources = container.get("resources") or {}
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound) or {}), (name, bound)


def test_the_service_account_mounts_no_token(rendered: Rendered) -> None:
    account = rendered.one("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    _, pod = pod_templates(rendered.objects)[0]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_probes_and_service_reach_the_images_port(rendered: Rendered) -> None:
    image = image_facts()
    _, container = operator_container(rendered)
    env = env_of(rendered, container)
    assert int(env["VM_OPERATOR_PORT"]) == image.port
    assert env["VM_OPERATOR_HOST"] == "0.0.0.0"
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert port_number(container, get["port"]) == image.port
        assert get["scheme"] == "HTTPS"
    service = rendered.one("Service")
    assert service["spec"]["type"] == "ClusterIP"
    [port] = service["spec"]["ports"]
    assert (port["port"], port_number(container, port["targetPort"])) == (8082, image.port)
    labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_state_on_the_claim_and_tmp_on_an_empty_dir(rendered: Rendered) -> None:
    image = image_facts()
    pod, container = operator_container(rendered)
    assert env_of(rendered, container)["VM_OPERATOR_STATE_DIR"] == image.state_dir
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    claim = rendered.one("PersistentVolumeClaim")
    assert mounts[image.state_dir]["persistentVolumeClaim"]["claimName"] == (
        claim["metadata"]["name"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "emptyDir" in mounts["/tmp"]


def test_the_image_is_the_one_named_in_the_kustomization(rendered: Rendered) -> None:
    spec = parse_kustomization(yaml.safe_load((BASE / "kustomization.yaml").read_text()))
    [override] = spec.images
    _, container = operator_container(rendered)
    assert container["image"] == f"{override.new_name}:{override.new_tag}"


# --- secrets are files -------------------------------------------------------------------------


def test_secrets_are_mounted_files_never_environment_values(rendered: Rendered) -> None:
    for _, pod in pod_templates(rendered.objects):
        for container in containers(pod):
            for source in container.get("envFrom") or []:
                assert "secretRef" not in source, container["name"]
            for var in container.get("env") or []:
                assert "secretKeyRef" not in (var.get("valueFrom") or {}), var["name"]
    pod, container = operator_container(rendered)
    files = secret_files(rendered, pod, container)
    env = env_of(rendered, container)
    for variable, secret_key in (("VM_OPERATOR_SSH_KEY", "id_ed25519"),
                                 ("VM_OPERATOR_SSH_KNOWN_HOSTS", "known_hosts"),
                                 ("VM_OPERATOR_TOKEN_FILE", "token"),
                                 ("VM_OPERATOR_TLS_CERT", "cert.pem"),
                                 ("VM_OPERATOR_TLS_KEY", "key.pem")):
        assert env[variable] in files, f"{variable}={env[variable]} is not a mounted secret file"
        assert env[variable].endswith(f"/{secret_key}")
    assert files[env["VM_OPERATOR_TOKEN_FILE"]].decode().strip() == rendered.token
    assert all(rendered.token not in value for value in env.values())
    mounted = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert mounted == {o["metadata"]["name"] for o in rendered.objects if o["kind"] == "Secret"}
    read_only = {m["name"]: m.get("readOnly") for m in container["volumeMounts"]}
    for volume in pod["volumes"]:
        if "secret" in volume:
            assert read_only[volume["name"]] is True, volume["name"]


def kubelet_projection(pod: Manifest, volume: Manifest) -> tuple[int, int, int]:
    """(uid, gid, mode) of a file of a secret volume, as the kubelet writes it: owned by root;
    with fsGroup, group fsGroup and the read-only volume's mask 0440 added to the mode."""
    mode = int(volume["secret"].get("defaultMode", 0o644))
    fs_group = (pod.get("securityContext") or {}).get("fsGroup")
    if fs_group is None:
        return 0, 0, mode
    return 0, int(fs_group), mode | 0o440


def test_secret_files_are_readable_by_the_operator_and_nobody_else(rendered: Rendered) -> None:
    pod, container = operator_container(rendered)
    context = {**pod["securityContext"], **container["securityContext"]}
    for volume in pod["volumes"]:
        if "secret" not in volume:
            continue
        uid, gid, mode = kubelet_projection(pod, volume)
        assert mode & 0o007 == 0, f"{volume['name']}: readable by others ({oct(mode)})"
        readable = (uid == context["runAsUser"] and mode & 0o400) or (
            gid in (context["runAsGroup"], pod["securityContext"].get("fsGroup"))
            and mode & 0o040)
        assert readable, f"{volume['name']}: {oct(mode)} {uid}:{gid} is not readable by the user"


def _ssh_keygen_reads(key: Path, user: pwd.struct_passwd, groups: list[int]) -> str:
    """``ssh-keygen -y -f KEY`` as ``user``: ssh's own load of a private key, with its
    permission check (a key owned by the user itself must not be readable by others)."""
    out = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], check=False, user=user.pw_uid,
                         group=user.pw_gid, extra_groups=groups, capture_output=True,
                         text=True, timeout=30, stdin=subprocess.DEVNULL)
    return out.stdout if out.returncode == 0 else f"refused: {out.stderr.strip()}"


def test_ssh_accepts_the_key_as_the_kubelet_mounts_it(rendered: Rendered) -> None:
    """The user 10001 does not exist on this machine (ssh needs a passwd entry), so nobody plays
    the operator's user and nogroup its fsGroup: what matters to ssh is who owns the file and
    who may read it, which the projection keeps."""
    if os.geteuid() != 0 or shutil.which("ssh-keygen") is None:
        pytest.skip("needs root (to own files as the kubelet does) and ssh-keygen")
    stand_in = pwd.getpwnam("nobody")
    pod, _ = operator_container(rendered)
    [ssh_volume] = [v for v in pod["volumes"]
                    if "secret" in v and "ssh" in v["secret"]["secretName"]]
    uid, gid, mode = kubelet_projection(pod, ssh_volume)
    folder = Path(tempfile.mkdtemp(prefix="vm-operator-k8s-key-"))
    try:
        folder.chmod(0o755)
        key = folder / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        os.chown(key, uid, stand_in.pw_gid if gid else 0)
        key.chmod(mode)
        public = (folder / "id_ed25519.pub").read_text().split()[1]
        answer = _ssh_keygen_reads(key, stand_in, [stand_in.pw_gid])
        assert public in answer, answer
        # The check is live: the same file owned by the user itself is refused at that mode.
        os.chown(key, stand_in.pw_uid, stand_in.pw_gid)
        assert "UNPROTECTED PRIVATE KEY FILE" in _ssh_keygen_reads(key, stand_in, [])
    finally:
        shutil.rmtree(folder)


# --- settings ------------------------------------------------------------------------------------


def test_every_variable_set_is_one_the_operator_reads(rendered: Rendered) -> None:
    known = variables_config_reads()
    assert {"VM_OPERATOR_TART_SSH", "VM_OPERATOR_TOKEN_FILE"} <= known  # the recorder works
    config_map = rendered.one("ConfigMap")
    assert set(config_map["data"]) - known == set()
    _, container = operator_container(rendered)
    assert {var["name"] for var in container["env"]} - known == set()


def service_link_variables(service: Manifest) -> set[str]:
    """The variables the kubelet would inject for a Service (docker-link style)."""
    prefix = service["metadata"]["name"].upper().replace("-", "_")
    names = {f"{prefix}_SERVICE_HOST", f"{prefix}_SERVICE_PORT", f"{prefix}_PORT"}
    for port in service["spec"]["ports"]:
        base = f"{prefix}_PORT_{port['port']}_{port.get('protocol', 'TCP')}"
        names |= {base, f"{base}_PROTO", f"{base}_PORT", f"{base}_ADDR"}
        if port.get("name"):
            names.add(f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}")
    return names


def test_service_links_cannot_override_the_operators_settings(rendered: Rendered) -> None:
    clashes = service_link_variables(rendered.one("Service")) & variables_config_reads()
    assert "VM_OPERATOR_PORT" in clashes  # VM_OPERATOR_PORT=tcp://10.x.y.z:8082 would be set
    _, pod = pod_templates(rendered.objects)[0]
    assert pod["enableServiceLinks"] is False


def test_an_init_reaps_the_ssh_masters_the_operator_leaves(rendered: Rendered) -> None:
    """ssh's ControlMaster daemonises: its exit must be reaped by a PID 1 that is not the
    operator (which only waits for its own subprocesses)."""
    _, pod = pod_templates(rendered.objects)[0]
    assert pod.get("shareProcessNamespace") is True


def test_the_operator_starts_with_the_pods_environment_and_files(
        rendered: Rendered, operator_factory: Callable[..., Any], tmp_path: Path) -> None:
    """A real operator given the ConfigMap and the Deployment's environment, the secret files
    laid out where the mounts put them (under a scratch root), and the Mac replaced by a closed
    loopback port: the probes answer without the token, the API with the secret's token."""
    pod, container = operator_container(rendered)
    files = secret_files(rendered, pod, container)
    root = tmp_path / "pod"
    for path, content in files.items():
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / path.lstrip("/")).write_bytes(content)
    env: dict[str, str | None] = {
        name: str(root / value.lstrip("/")) if value in files else value
        for name, value in env_of(rendered, container).items()
    }
    destination, _ = parse_target(env["VM_OPERATOR_TART_SSH"] or "")
    env["VM_OPERATOR_TART_SSH"] = f"{destination.rpartition('@')[0]}@127.0.0.1"
    env["VM_OPERATOR_SSH_PORT"] = str(free_port())  # nothing listens there
    env["VM_OPERATOR_STATE_DIR"] = str(tmp_path / "state")
    operator = operator_factory(env=env, seed=False)  # --host 127.0.0.1 --port 0 win
    listening = next(r for r in operator.log_records() if r.get("event") == "listening")
    assert (listening["auth"], listening["transport"]) == (True, "ssh")
    cert = root / "var/run/secrets/vm-operator/tls/cert.pem"
    context = trusting(cert)  # the probes do not check it; a client trusts it

    def get(path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        status, _, body = https_request(operator.port, path, context, headers=headers)
        return status, body

    assert get("/health")[0] == 200
    assert get("/ready")[0] == 503  # the "Mac" refuses: not ready
    assert get("/vms")[0] == 401
    status, body = get("/vms", headers={"Authorization": f"Bearer {rendered.token}"})
    problem = json.loads(body)
    assert (status, problem["type"].endswith("tart-host-unreachable")) == (503, True), problem


# --- network policy ------------------------------------------------------------------------------


def test_the_network_policy_lets_in_only_clients_and_out_only_ssh_and_dns(
        rendered: Rendered) -> None:
    policy = rendered.one("NetworkPolicy")["spec"]
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]

    _, container = operator_container(rendered)
    [rule] = policy["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": port_number(container, "https")}]
    for peer in rule["from"]:  # every peer names labelled pods; no address block, no "anyone"
        assert set(peer) <= {"podSelector", "namespaceSelector"}, peer
        assert peer["podSelector"]["matchLabels"], peer
        if "namespaceSelector" in peer:
            assert peer["namespaceSelector"]["matchLabels"], peer

    settings = rendered.one("ConfigMap")["data"]
    destination, ssh_port = parse_target(settings["VM_OPERATOR_TART_SSH"],
                                         int(settings.get("VM_OPERATOR_SSH_PORT", "22")))
    ssh_rules = [r for r in policy["egress"] if any("ipBlock" in peer for peer in r["to"])]
    dns_rules = [r for r in policy["egress"] if r not in ssh_rules]
    [ssh_rule] = ssh_rules
    assert ssh_rule["ports"] == [{"protocol": "TCP", "port": ssh_port}]
    [peer] = ssh_rule["to"]
    assert set(peer) == {"ipBlock"} and "except" not in peer["ipBlock"]
    network = ipaddress.ip_network(peer["ipBlock"]["cidr"])
    assert network.num_addresses <= 256, "the SSH egress should name the Mac, not a wide range"
    host = destination.rpartition("@")[2]
    try:
        assert ipaddress.ip_address(host) in network, (host, network)
    except ValueError:
        pass  # a host name: the README says to put its address in the policy
    [dns] = dns_rules
    assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    for peer in dns["to"]:
        assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
        assert peer["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": "kube-system"}


def test_the_namespace_enforces_the_restricted_pod_security_standard(rendered: Rendered) -> None:
    namespace = rendered.one("Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in rendered.objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace["metadata"]["name"], obj["kind"]
