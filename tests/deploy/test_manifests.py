"""The deployment files (deploy/), checked offline: every Kubernetes object the overlays render is valid
against the Kubernetes API schemas, and the invariants the deployment relies on hold, read from the code
they depend on (the streamer's routes, settings and Faust configuration), not from copies of it.

The overlays are rendered here by a small kustomize subset (resources, namespace, images, strategic-merge
patches); anything else in a kustomization.yaml fails the render rather than being silently ignored.
"""

import copy
import re
import time
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from faust.types.settings import Settings as FaustSettings
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource

from streamer.cli import COMMANDS
from streamer.common.settings import SETTINGS, Settings

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ["dev", "prod"]
# The oldest Kubernetes release the manifests target and the newest the schema package knows.
KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.utils.latest_version()]
KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
# Strategic-merge keys (x-kubernetes-patch-merge-key) of the lists the patches touch; other lists replace.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name"}
FAUST_VARIABLES = {p.env_name for p in FaustSettings.SETTINGS.values() if p.env_name}
STREAMER_POD = "streamrec-streamer-0"
# What the README tells users to put in the credentials Secret, as the manifests read it.
DOCUMENTED_SECRET = {"sasl-username": "streamrec", "sasl-password": "s3cret"}
# The worker's bound on its own shutdown (finish the batch, flush, commit, close RocksDB), and the margin
# the kubelet leaves after it for the process to exit before it sends SIGKILL.
SHUTDOWN_SETTING = "STREAMREC_SHUTDOWN_TIMEOUT_S"
GRACE_MARGIN_S = 10


# --- a small kustomize ---------------------------------------------------------------------------


def load_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render(directory: Path) -> list[dict]:
    """The objects ``kustomize build directory`` outputs, for the subset of kustomize used in deploy/."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    if unsupported := set(spec) - KUSTOMIZATION_KEYS:
        raise ValueError(f"{directory}: this renderer does not implement {sorted(unsupported)}")
    objects: list[dict] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        objects += render(path) if path.is_dir() else load_documents(path)
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise ValueError(f"{directory}: only file patches are implemented, got {patch}")
        for document in load_documents(directory / patch["path"]):
            strategic_merge(target(objects, document), document)
    for image in spec.get("images", []):
        set_image(objects, image)
    if namespace := spec.get("namespace"):
        for obj in objects:
            obj["metadata"]["namespace"] = namespace
    return objects


def target(objects: list[dict], patch: dict) -> dict:
    key = (patch["apiVersion"], patch["kind"], patch["metadata"]["name"])
    matches = [o for o in objects if (o["apiVersion"], o["kind"], o["metadata"]["name"]) == key]
    if len(matches) != 1:
        raise ValueError(f"a patch must match exactly one object, {key} matches {len(matches)}")
    return matches[0]


def strategic_merge(base: dict, patch: dict) -> None:
    for key, value in patch.items():
        if isinstance(value, str) and key.startswith("$"):
            raise ValueError(f"patch directive {key} is not implemented")
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            strategic_merge(base[key], value)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(base.get(key), list):
            merge_list(base[key], value, MERGE_KEYS[key])
        else:
            base[key] = copy.deepcopy(value)


def merge_list(base: list[dict], patch: list[dict], merge_key: str) -> None:
    for item in patch:
        existing = next((b for b in base if b[merge_key] == item[merge_key]), None)
        if existing is None:
            base.append(copy.deepcopy(item))
        else:
            strategic_merge(existing, item)


def set_image(objects: list[dict], image: dict) -> None:
    for container in all_containers(objects):
        if re.split(r"[:@]", container["image"], maxsplit=1)[0] == image["name"]:
            new = image.get("newName", image["name"])
            container["image"] = (
                f"{new}@{image['digest']}" if "digest" in image else f"{new}:{image['newTag']}"
            )


def pod_spec(obj: dict) -> dict | None:
    return obj.get("spec", {}).get("template", {}).get("spec")


def all_containers(objects: list[dict]) -> Iterator[dict]:
    for obj in objects:
        spec = pod_spec(obj) or {}
        yield from spec.get("initContainers", [])
        yield from spec.get("containers", [])


# --- the rendered deployment ---------------------------------------------------------------------


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> list[dict]:
    return render(DEPLOY / "k8s" / "overlays" / request.param)


def find(objects: list[dict], kind: str, name: str) -> dict:
    (match,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return match


def streamer(objects: list[dict]) -> dict:
    return find(objects, "StatefulSet", "streamrec-streamer")


def container(obj: dict) -> dict:
    (only,) = pod_spec(obj)["containers"]
    return only


def pod_environment(objects: list[dict], obj: dict, pod_name: str) -> dict[str, str]:
    """The environment Kubernetes gives the pod's container: envFrom ConfigMaps, then env entries
    (literal values, the pod name, keys of the documented Secret)."""
    spec = container(obj)
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        env |= find(objects, "ConfigMap", source["configMapRef"]["name"])["data"]
    for entry in spec.get("env", []):
        env[entry["name"]] = env_value(entry, pod_name)
    return env


def env_value(entry: dict, pod_name: str) -> str:
    if "value" in entry:
        return entry["value"]
    source = entry["valueFrom"]
    if "fieldRef" in source:
        assert source["fieldRef"]["fieldPath"] == "metadata.name", "only the pod name is resolved here"
        return pod_name
    ref = source["secretKeyRef"]
    assert ref["name"] == "streamrec-kafka", f"undocumented Secret {ref['name']}"
    return DOCUMENTED_SECRET[ref["key"]]


def setting(env: dict[str, str], name: str) -> object:
    spec = SETTINGS[name]
    return spec.parse(name, env.get(name, spec.default))


def web_routes() -> dict[str, str]:
    """The streamer's HTTP routes (view name -> path), as its Faust app registers them."""
    from streamer.worker.assembly import build_worker

    return dict(build_worker(Settings.from_env({})).app.web.reverse_names)


# --- schema validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schema(objects, version):
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_schema_check_catches_a_misspelt_field(objects):
    broken = copy.deepcopy(streamer(objects))
    broken["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 60
    with pytest.raises(kubernetes_validate.ValidationError, match="terminationGracePeriodSecond"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(ValueError, match="commonLabels"):
        render(tmp_path)


def test_overlays_patch_the_base():
    dev, prod = (render(DEPLOY / "k8s" / "overlays" / name) for name in OVERLAYS)
    assert streamer(dev)["spec"]["replicas"] == 1
    assert streamer(prod)["spec"]["replicas"] == 4
    assert (
        pod_environment(prod, streamer(prod), STREAMER_POD)["STREAMREC_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    )
    for obj in prod:
        assert obj["metadata"]["namespace"] == "streamrec"
    assert container(streamer(prod))["image"] == "registry.example.com/streamrec:0.1.0"
    # The patched container keeps what the patch does not mention.
    assert container(streamer(dev))["readinessProbe"] == container(streamer(prod))["readinessProbe"]


# --- invariants ----------------------------------------------------------------------------------


def test_probes_point_at_the_endpoints_the_streamer_serves(objects):
    routes = web_routes()
    statefulset = streamer(objects)
    spec = container(statefulset)
    env = pod_environment(objects, statefulset, STREAMER_POD)
    (web_port,) = [p["containerPort"] for p in spec["ports"] if p["name"] == "web"]
    assert web_port == setting(env, "STREAMREC_WEB_PORT")
    expected = {"readinessProbe": "readyz", "livenessProbe": "healthz", "startupProbe": "healthz"}
    for probe, view in expected.items():
        http = spec[probe]["httpGet"]
        assert http["path"] == routes[view], probe
        assert http["port"] in ("web", web_port), probe
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == routes["metrics"]
    assert int(annotations["prometheus.io/port"]) == web_port


def test_each_streamer_pod_keeps_its_state_on_its_own_volume(objects):
    statefulset = streamer(objects)
    env = pod_environment(objects, statefulset, STREAMER_POD)
    data_dir = setting(env, "STREAMREC_DATA_DIR")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = [m for m in container(statefulset)["volumeMounts"] if data_dir.is_relative_to(m["mountPath"])]
    assert [m["name"] for m in mounts] == [claim["metadata"]["name"]]
    assert mounts[0].get("readOnly") is not True
    shared = {v["name"] for v in pod_spec(statefulset)["volumes"]}
    assert claim["metadata"]["name"] not in shared, "a pod volume would hide the per-pod claim"
    assert statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"


def test_static_membership_id_is_the_pod_name(objects, monkeypatch):
    from streamer.worker.faust_app import create_app

    env = pod_environment(objects, streamer(objects), STREAMER_POD)
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # Faust reads its own variables from the process environment
    settings = Settings.from_env()
    assert settings.worker.consumer_instance_id == STREAMER_POD
    conf = create_app(settings).conf
    assert conf.consumer_group_instance_id == STREAMER_POD
    # A restarted pod rejoins as the same member only within the session timeout.
    assert conf.broker_session_timeout == setting(env, "STREAMREC_KAFKA_SESSION_TIMEOUT_S")


@pytest.mark.xfail(
    SHUTDOWN_SETTING not in SETTINGS,
    reason=f"Faust puts no bound on the worker's shutdown; {SHUTDOWN_SETTING} is to come (deploy/README.md)",
    strict=True,
)
def test_grace_period_outlasts_the_workers_bounded_shutdown(objects):
    statefulset = streamer(objects)
    shutdown_s = setting(pod_environment(objects, statefulset, STREAMER_POD), SHUTDOWN_SETTING)
    grace_s = pod_spec(statefulset)["terminationGracePeriodSeconds"]
    assert grace_s >= shutdown_s + GRACE_MARGIN_S


def test_the_retrainer_keeps_its_window_on_a_volume_and_exposes_metrics(objects):
    retrainer = find(objects, "Deployment", "streamrec-retrainer")
    env = pod_environment(objects, retrainer, "pod")
    window = setting(env, "STREAMREC_RETRAINER_DIR")
    (mount,) = [m for m in container(retrainer)["volumeMounts"] if window.is_relative_to(m["mountPath"])]
    (volume,) = [v for v in pod_spec(retrainer)["volumes"] if v["name"] == mount["name"]]
    claim = find(objects, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    port = setting(env, "STREAMREC_RETRAINER_METRICS_PORT")
    assert [p["containerPort"] for p in container(retrainer)["ports"]] == [port]
    assert int(retrainer["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]) == port


def test_every_container_has_resource_requests_and_limits(objects):
    for spec in all_containers(objects):
        resources = spec["resources"]
        for kind in ("cpu", "memory"):
            request, limit = resources["requests"][kind], resources["limits"][kind]
            assert quantity(request) <= quantity(limit), (spec["name"], kind)


def quantity(text: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    assert match, text
    return float(match[1]) * units.get(match[2], 1)


def test_disruption_budget_and_service_select_the_streamer_pods(objects):
    statefulset = streamer(objects)
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    budget = find(objects, "PodDisruptionBudget", "streamrec-streamer")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = find(objects, "Service", statefulset["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= labels.items()


def test_streamers_read_and_the_retrainer_writes_one_model_store(objects):
    stores = {}
    for obj, writable in (
        (streamer(objects), False),
        (find(objects, "Deployment", "streamrec-retrainer"), True),
    ):
        env = pod_environment(objects, obj, "pod")
        store = setting(env, "STREAMREC_MODEL_STORE")
        (mount,) = [m for m in container(obj)["volumeMounts"] if store.is_relative_to(m["mountPath"])]
        assert mount.get("readOnly", False) is not writable
        (volume,) = [v for v in pod_spec(obj)["volumes"] if v["name"] == mount["name"]]
        stores[obj["kind"]] = (volume["persistentVolumeClaim"]["claimName"], store)
        assert setting(env, "STREAMREC_MODEL_PATH").is_relative_to(mount["mountPath"])
    assert stores["StatefulSet"] == stores["Deployment"]
    assert find(objects, "Deployment", "streamrec-retrainer")["spec"]["strategy"]["type"] == "Recreate"


def test_every_variable_set_is_a_streamrec_or_faust_setting(objects):
    for obj in objects:
        if pod_spec(obj) is None:
            continue
        env = pod_environment(objects, obj, "pod")
        unknown = set(env) - set(SETTINGS) - FAUST_VARIABLES
        assert not unknown, f"{obj['metadata']['name']} sets {sorted(unknown)}"
        Settings.from_env(env)  # and every value parses


def test_pods_run_as_non_root_without_service_links(objects):
    for obj in objects:
        if (spec := pod_spec(obj)) is None:
            continue
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["enableServiceLinks"] is False, "Faust would read injected variables such as WEB_PORT"
        for each in spec["containers"]:
            assert each["securityContext"]["allowPrivilegeEscalation"] is False


def test_containers_run_real_streamrec_commands(objects):
    for obj in objects:
        if (spec := pod_spec(obj)) is None:
            continue
        for each in spec["containers"]:
            if "command" in each:
                assert_runs_a_script_of_the_image(each["command"])
            else:
                assert each["args"][0] in COMMANDS, each["args"]


def assert_runs_a_script_of_the_image(command: list[str]) -> None:
    interpreter, script = command
    assert interpreter == "python"
    assert (ROOT / image_files()[script]).is_file(), f"{script} is not copied from the repository"


# --- topics --------------------------------------------------------------------------------------


def create_topics_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("create_topics", DEPLOY / "create_topics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_topics_job_creates_the_workers_internal_topics_under_their_names():
    from streamer.worker.assembly import build_worker

    worker = build_worker(Settings.from_env({}))
    names = {t.name for t in create_topics_module().faust_topics(worker.settings)}
    assert names == {
        worker.settings.sequenced_topic,
        worker.states.changelog_topic,
        worker.app._leader_assignor._leader_topic_name,
    }


@pytest.mark.integration
def test_the_topics_job_creates_every_topic_with_its_partitions_and_policy(
    kafka_bootstrap, unique_name, monkeypatch
):
    app_id = unique_name("topics")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMREC_APP_ID": app_id,
        "STREAMREC_TOPIC_PARTITIONS": "3",
        **{
            f"STREAMREC_{kind}_TOPIC": f"{app_id}-{kind.lower()}"
            for kind in ("CLICK", "BUY", "RECOMMENDATIONS")
        },
        "STREAMREC_DEAD_LETTER_TOPIC": f"{app_id}-dead-letters",
        "STREAMREC_MODEL_UPDATES_TOPIC": f"{app_id}-model-updates",
        "STREAMREC_CATALOG_TOPIC": f"{app_id}-item-catalog",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    create_topics = create_topics_module()
    create_topics.main()
    create_topics.main()  # a second run finds everything in place

    expected = {
        f"{app_id}-click": (3, "delete"),
        f"{app_id}-buy": (3, "delete"),
        f"{app_id}-recommendations": (3, "delete"),
        f"{app_id}-dead-letters": (3, "delete"),
        f"{app_id}-sequenced": (3, "delete"),
        f"{app_id}-user-state-changelog": (3, "compact"),
        f"{app_id}-__assignor-__leader": (1, "delete"),
        f"{app_id}-model-updates": (1, "compact"),
        f"{app_id}-item-catalog": (1, "compact"),
    }
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap.split(","))
    try:
        # Just after creation the broker may describe a topic before all of it is known: poll.
        deadline = time.monotonic() + 30
        while (got := described_topics(admin, list(expected))) != expected and time.monotonic() < deadline:
            time.sleep(0.2)  # poll interval
    finally:
        admin.close()
    assert got == expected


def described_topics(admin: KafkaAdminClient, names: list[str]) -> dict[str, tuple[int, str | None]]:
    partitions = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}
    resources = [ConfigResource("topic", name, ["cleanup.policy"]) for name in names]
    configs = admin.describe_configs(resources, config_filter="all")["topic"]
    return {
        name: (partitions.get(name, 0), configs.get(name, {}).get("cleanup.policy", {}).get("value"))
        for name in names
    }


# --- Dockerfile and compose ------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    return [tuple(line.split(maxsplit=1)) for line in lines if line[:1].isalpha()]


def image_files() -> dict[str, str]:
    """Path in the image -> path in the repository, for the files COPY takes from the build context."""
    copies = [rest.split() for keyword, rest in dockerfile_instructions() if keyword == "COPY"]
    return {args[-1]: args[0] for args in copies if len(args) == 2}


def test_the_image_is_multi_stage_non_root_and_runs_streamrec():
    instructions = dockerfile_instructions()
    assert sum(keyword == "FROM" for keyword, _ in instructions) >= 2
    (user,) = [rest for keyword, rest in instructions if keyword == "USER"]
    assert user.split(":")[0] not in ("root", "0")
    assert [rest for keyword, rest in instructions if keyword == "ENTRYPOINT"] == ['["streamrec"]']


def test_the_readme_creates_the_secret_the_manifests_read():
    readme = (DEPLOY / "README.md").read_text()
    assert "create secret generic streamrec-kafka " in readme
    for key in DOCUMENTED_SECRET:
        assert f"--from-literal={key}=" in readme


def test_compose_runs_kafka_in_kraft_mode_and_every_streamrec_service_by_command():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "streamer", "retrainer", "producer"} <= set(services)
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["streamer"]["command"] == ["worker"]
    assert services["retrainer"]["command"] == ["retrainer"]
    assert services["producer"]["command"][0] == "replay"
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    for name, service in services.items():
        if name == "kafka":
            continue
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        env = service["environment"]
        unknown = set(env) - set(SETTINGS) - FAUST_VARIABLES
        assert not unknown, f"{name} sets {sorted(unknown)}"
        Settings.from_env(env)
        assert f"//{env['KAFKA_BOOTSTRAP_SERVERS']}" in advertised
        if "entrypoint" in service and service["entrypoint"][0] == "python":
            assert_runs_a_script_of_the_image(service["entrypoint"])
        elif service.get("command") and "entrypoint" not in service:
            assert service["command"][0] in COMMANDS, service["command"]
    streamer_env = services["streamer"]["environment"]
    data_dir = setting(streamer_env, "STREAMREC_DATA_DIR")
    volumes = [v.split(":") for v in services["streamer"]["volumes"]]
    assert any(data_dir.is_relative_to(target) for _, target, *_ in volumes)
