//! Offline checks of the deployment files that no engine here can run: the Helm chart
//! (`deploy/helm/sniffguard`), the plain Kubernetes manifests rendered from it and the
//! others in `examples/kubernetes/`, the policy they carry and what it gives the demo
//! pods, the containerd snippets (`config/containerd/config.toml` for config version 2,
//! `config-v3.toml` for version 3), the Docker `daemon.json`, the Podman hooks.d files and
//! the systemd unit.
//!
//! The Kubernetes checks need no cluster and no network: `helm lint` and `helm template`
//! render the chart (default and non-default values, for several Kubernetes versions),
//! and `kubernetes-validate --strict` (PyPI; it ships the API's OpenAPI schemas) checks
//! every object against the oldest version the chart states, 1.30, and the newest it
//! knows: an unknown field, a wrong type or a missing required field fails. Both tools
//! are installed under `target/tools` by `scripts/setup.sh`. No root needed.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod wiring;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use sniffguard_common::policy::{keys, ChosenBy, Pattern, Policy, Resolution};
use sniffguard_common::ENVIRONMENT_ANNOTATION;
use sniffguard_tests::{find_in_path, repo_root, run_command, sniffguard_bin, temp_dir, CmdOutput};
use wiring::shipped;

// ---------------------------------------------------------------------------------------
// The chart, rendered by helm and validated by kubernetes-validate
// ---------------------------------------------------------------------------------------

/// The chart's directory, relative to the repository root.
const CHART: &str = "deploy/helm/sniffguard";

/// The oldest Kubernetes the chart states (`kubeVersion` in Chart.yaml), the first with the
/// DaemonSet's `securityContext.appArmorProfile`, and the last without it.
const OLDEST: &str = "1.25";
const APPARMOR_FIELD: &str = "1.30";
const BEFORE_APPARMOR_FIELD: &str = "1.29";

/// Bound for one helm or kubernetes-validate run (each takes well under a second here;
/// the first run of the validator compiles its schemas).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// A tool scripts/setup.sh installs under `target/tools` (`bin/NAME` or the venv's
/// `venv/bin/NAME`), else one in PATH.
fn tool(name: &str) -> PathBuf {
    let tools = repo_root().join("target/tools");
    [
        tools.join("bin").join(name),
        tools.join("venv/bin").join(name),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .or_else(|| find_in_path(name))
    .unwrap_or_else(|| {
        panic!("{name} is not installed: run scripts/setup.sh (it puts it in target/tools)")
    })
}

/// `helm template sniffguard CHART -n sniffguard-system --kube-version VERSION ARGS…`.
fn helm_template(kube_version: &str, args: &[&str]) -> CmdOutput {
    run_command(
        Command::new(tool("helm"))
            .current_dir(repo_root())
            .args([
                "template",
                "sniffguard",
                CHART,
                "--namespace",
                "sniffguard-system",
            ])
            .args(["--kube-version", &format!("{kube_version}.0")])
            .args(args),
        TOOL_TIMEOUT,
    )
}

/// What `helm template` printed, or the test fails with helm's own message.
fn render(kube_version: &str, args: &[&str]) -> String {
    let out = helm_template(kube_version, args);
    assert!(out.success(), "helm template {args:?} failed: {out}");
    out.stdout
}

/// `kubernetes-validate --strict` of `text` against `version` (`None`: the newest the
/// tool knows, its default): unknown fields, wrong types and missing required fields fail.
fn validate(text: &str, version: Option<&str>) -> CmdOutput {
    let dir = temp_dir("sniffguard-k8s-validate-");
    let path = dir.path().join("manifests.yaml");
    fs::write(&path, text).unwrap();
    let mut cmd = Command::new(tool("kubernetes-validate"));
    cmd.arg("--strict");
    if let Some(version) = version {
        cmd.args(["--kubernetes-version", version]);
    }
    run_command(cmd.arg(&path), TOOL_TIMEOUT)
}

/// Validates every document of `text` against `version` and returns the version the tool
/// named. Only kinds outside the Kubernetes API (the Prometheus operator's
/// ServiceMonitor, for which it has no schema) may go unchecked; those are returned
/// for the caller to check.
fn assert_valid(text: &str, version: Option<&str>, what: &str) -> String {
    let out = validate(text, version);
    assert!(out.success(), "{what} against {version:?}: {out}");
    let docs = documents(text, what);
    let passed = out
        .stdout
        .lines()
        .chain(out.stderr.lines())
        .filter(|l| l.contains(" passed for resource "))
        .count();
    let unknown: Vec<&Value> = docs
        .iter()
        .filter(|d| d["apiVersion"] == "monitoring.coreos.com/v1")
        .collect();
    assert_eq!(
        passed + unknown.len(),
        docs.len(),
        "{what} against {version:?}: not every document was checked: {out}"
    );
    for line in out.stdout.lines().chain(out.stderr.lines()) {
        assert!(
            !line.starts_with("WARN") || line.contains("kind ServiceMonitor"),
            "{what} against {version:?}: {line}"
        );
    }
    let named = out
        .stdout
        .lines()
        .chain(out.stderr.lines())
        .find_map(|l| l.split(" against version ").nth(1))
        .expect("the validator names the version")
        .trim()
        .to_owned();
    eprintln!("{what}: {passed} objects valid for Kubernetes {named}");
    named
}

/// Every YAML document of `text`, as JSON values (empty documents skipped).
fn documents(text: &str, origin: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{origin}: not valid YAML: {e}"))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The one document of `kind` in `docs`.
fn only<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

/// The agent's and the fd keeper's DaemonSets, as the chart names them for release
/// `sniffguard` (the release name `helm_template` and the plain manifests use).
const AGENT: &str = "sniffguard";
const KEEPER: &str = "sniffguard-keeper";

/// The one DaemonSet named `name` in `docs`.
fn daemonset<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "DaemonSet" && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one DaemonSet {name}, found {}",
        found.len()
    );
    found[0]
}

/// Whether a label selector (a `matchLabels` or a Service's `selector` map) selects an
/// object with `labels`: every key it names, with the same value (an empty selector
/// selects nothing here, to keep a missing selector from passing).
fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(selector) = selector.as_object() else {
        return false;
    };
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The manifests: every `*.yaml` in `examples/kubernetes/`, with their documents.
fn manifests() -> Vec<(PathBuf, Vec<Value>)> {
    let dir = repo_root().join("examples/kubernetes");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap();
            let docs = documents(&text, &path.display().to_string());
            (path, docs)
        })
        .collect()
}

/// The one document of `kind` named `name` across all manifests.
fn find(kind: &str, name: &str) -> Value {
    let found: Vec<Value> = manifests()
        .into_iter()
        .flat_map(|(_, docs)| docs)
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {kind} {name}, found {}",
        found.len()
    );
    found.into_iter().next().unwrap()
}

/// The plain manifests are the chart's default rendering: one source, no drift.
#[test]
fn plain_manifests_are_the_chart_rendered() {
    let dir = temp_dir("sniffguard-render-");
    let out_path = dir.path().join("sniffguard.yaml");
    let out = run_command(
        Command::new(repo_root().join("scripts/render-manifests.sh")).arg(&out_path),
        TOOL_TIMEOUT,
    );
    assert!(out.success(), "{out}");
    let fresh = fs::read_to_string(&out_path).unwrap();
    let shipped = shipped("examples/kubernetes/sniffguard.yaml");
    assert!(
        fresh == shipped,
        "examples/kubernetes/sniffguard.yaml differs from the chart's rendering: run \
         scripts/render-manifests.sh"
    );
}

#[test]
fn every_example_manifest_is_valid_for_the_stated_and_the_newest_kubernetes() {
    let mut kinds = BTreeSet::new();
    for (path, docs) in manifests() {
        assert!(!docs.is_empty(), "{}: no documents", path.display());
        kinds.extend(
            docs.iter()
                .map(|d| d["kind"].as_str().unwrap_or("").to_owned()),
        );
        let text = fs::read_to_string(&path).unwrap();
        let what = path.display().to_string();
        assert_valid(&text, Some(APPARMOR_FIELD), &what);
        assert_valid(&text, None, &what);
    }
    for kind in [
        "DaemonSet",
        "RuntimeClass",
        "ConfigMap",
        "ServiceAccount",
        "Namespace",
        "Service",
    ] {
        assert!(kinds.contains(kind), "no {kind} among {kinds:?}");
    }
}

/// Values that change every knob the chart has (what an operator sets).
const NON_DEFAULT_VALUES: &str = r#"
image:
  repository: registry.internal/security/sniffguard
  tag: "0.1.0-musl"
  pullPolicy: Always
imagePullSecrets: [pull-secret]
policy: |
  default_environment = "ci"

  [[rules]]
  environment = "production"
  namespace = "shop-*"

  [metrics]
  listen = "0.0.0.0:9100"
priorityClassName: sniffguard-critical
nodeSelector:
  node-role.example/workers: "true"
tolerations:
  - key: dedicated
    operator: Equal
    value: security
    effect: NoSchedule
resources:
  supervisor:
    requests: {cpu: 100m, memory: 128Mi}
    limits: {cpu: "1", memory: 1Gi}
  install:
    requests: {cpu: 5m, memory: 8Mi}
    limits: {memory: 32Mi}
logLevel: debug
runtimeDir: /var/run/sniffguard-node
keeper:
  priorityClassName: sniffguard-keeper-critical
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {memory: 64Mi}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
            - {key: sniffguard.io/runtime, operator: In, values: [ready]}
metrics:
  serviceMonitor:
    enabled: true
    interval: 15s
    labels: {release: prometheus}
runtimeClass:
  create: false
"#;

/// `helm lint` passes with the default and the non-default values, and every object the
/// chart renders is valid for the oldest Kubernetes the chart states (1.25, annotation
/// form of AppArmor), for 1.30 (the securityContext field) and for the newest the
/// validator knows.
#[test]
fn chart_lints_and_renders_valid_objects_for_every_stated_kubernetes() {
    let dir = temp_dir("sniffguard-values-");
    let values = dir.path().join("values.yaml");
    fs::write(&values, NON_DEFAULT_VALUES).unwrap();
    let values = values.display().to_string();
    for args in [vec![], vec!["--values", values.as_str()]] {
        let out = run_command(
            Command::new(tool("helm"))
                .current_dir(repo_root())
                .args(["lint", "--strict", CHART])
                .args(&args),
            TOOL_TIMEOUT,
        );
        assert!(out.success(), "helm lint {args:?}: {out}");
    }

    let stated = shipped(&format!("{CHART}/Chart.yaml"));
    assert!(
        stated.contains(&format!("kubeVersion: \">={OLDEST}.0-0\"")),
        "Chart.yaml must state {OLDEST} as the oldest Kubernetes"
    );
    let mut newest = String::new();
    for (kube, args, field) in [
        (APPARMOR_FIELD, vec![], true),
        (BEFORE_APPARMOR_FIELD, vec![], false),
        (APPARMOR_FIELD, vec!["--values", values.as_str()], true),
        (
            BEFORE_APPARMOR_FIELD,
            vec!["--values", values.as_str()],
            false,
        ),
    ] {
        let text = render(kube, &args);
        let what = format!("the chart for {kube} with {args:?}");
        let docs = documents(&text, &what);
        let daemonset = daemonset(&docs, AGENT);
        let pod = &daemonset["spec"]["template"];
        let supervisor = &pod["spec"]["containers"][0];
        // The AppArmor form follows the cluster's version: exactly one of the two.
        let annotation = &pod["metadata"]["annotations"]
            ["container.apparmor.security.beta.kubernetes.io/supervisor"];
        let in_field = &supervisor["securityContext"]["appArmorProfile"];
        if field {
            assert_eq!(in_field["type"], "Unconfined", "{what}");
            assert!(annotation.is_null(), "{what}");
            assert_valid(&text, Some(APPARMOR_FIELD), &what);
            newest = assert_valid(&text, None, &what);
        } else {
            assert!(in_field.is_null(), "{what}");
            assert_eq!(annotation, "unconfined", "{what}");
            assert_valid(&text, Some(OLDEST), &what);
            assert_valid(&text, Some(BEFORE_APPARMOR_FIELD), &what);
        }
    }
    eprintln!("newest Kubernetes validated against: {newest}");
    assert!(
        newest.as_str() > APPARMOR_FIELD,
        "the validator's newest ({newest}) should be past {APPARMOR_FIELD}"
    );

    // What the non-default values change, where they land.
    let text = render(APPARMOR_FIELD, &["--values", &values]);
    let docs = documents(&text, "non-default");
    let daemonset = daemonset(&docs, AGENT);
    let pod = &daemonset["spec"]["template"]["spec"];
    let supervisor = &pod["containers"][0];
    let install = &pod["initContainers"][0];
    for container in [supervisor, install] {
        assert_eq!(
            container["image"],
            "registry.internal/security/sniffguard:0.1.0-musl"
        );
        assert_eq!(container["imagePullPolicy"], "Always");
    }
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "pull-secret"}]));
    assert_eq!(pod["priorityClassName"], "sniffguard-critical");
    // Helm merges a map value into the default one: the operator's label is added.
    assert_eq!(
        pod["nodeSelector"],
        json!({"kubernetes.io/os": "linux", "node-role.example/workers": "true"})
    );
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert_eq!(supervisor["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(install["resources"]["limits"]["memory"], "32Mi");
    assert_eq!(
        supervisor["env"],
        json!([{"name": "SNIFFGUARD_LOG", "value": "debug"}])
    );
    assert_eq!(supervisor["ports"][0]["containerPort"], 9100);
    assert_eq!(
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0]["key"],
        "sniffguard.io/runtime"
    );
    // runtimeDir moves the supervisor's sockets, its probes' and the node's
    // runtime.env together (the keeper's: keeper_daemonset_lives_apart_from_the_supervisor).
    let runtime_dir = "/var/run/sniffguard-node";
    let args = strings(&supervisor["args"]);
    assert!(
        args.windows(2).any(|w| w == ["--runtime-dir", runtime_dir]),
        "{args:?}"
    );
    assert_eq!(
        host_path_at(pod, supervisor, runtime_dir).as_deref(),
        Some(runtime_dir)
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        let command = strings(&supervisor[probe]["exec"]["command"]);
        assert!(
            command
                .windows(2)
                .any(|w| w == ["--runtime-dir", runtime_dir]),
            "{probe}: {command:?}"
        );
    }
    assert!(
        strings(&install["command"])
            .iter()
            .any(|c| c.contains(&format!("SNIFFGUARD_RUNTIME_DIR={runtime_dir} "))),
        "the install step writes another runtime directory into runtime.env"
    );
    let policy = only(&docs, "ConfigMap");
    assert!(
        policy["data"]["sniffguard.toml"]
            .as_str()
            .is_some_and(|p| p.contains("namespace = \"shop-*\"")),
        "{policy}"
    );
    assert!(docs.iter().all(|d| d["kind"] != "RuntimeClass"));
    // The ServiceMonitor has no schema in the validator: check that it reaches the
    // Service (labels, port name, namespace) and the Service reaches the pods.
    let service = only(&docs, "Service");
    let monitor = only(&docs, "ServiceMonitor");
    assert_eq!(service["spec"]["ports"][0]["port"], 9100);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(supervisor["ports"][0]["name"], "metrics");
    assert!(selects(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"]
    ));
    assert!(selects(
        &service["spec"]["selector"],
        &daemonset["spec"]["template"]["metadata"]["labels"]
    ));
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "15s");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        json!([service["metadata"]["namespace"]])
    );
    for key in ["apiVersion", "kind", "metadata", "spec"] {
        assert!(monitor.get(key).is_some(), "ServiceMonitor without {key}");
    }
}

/// The chart refuses values that would deploy something broken, naming the value.
#[test]
fn chart_refuses_broken_values_with_a_message() {
    for (args, needle) in [
        (
            vec!["--set-string", "policy=default_environment = \"ci\""],
            "the policy serves no metrics",
        ),
        (
            vec!["--set", "runtimeClass.handler=runc"],
            "runtimeClass.handler must not be runc",
        ),
        (
            vec!["--set", "appArmor.form=maybe"],
            "appArmor.form is \"maybe\"",
        ),
        (
            vec![
                "--set",
                "metrics.service.enabled=false",
                "--set",
                "metrics.serviceMonitor.enabled=true",
            ],
            "metrics.serviceMonitor.enabled needs metrics.service.enabled",
        ),
        (
            vec!["--set-string", "runtimeDir=run/sniffguard"],
            "runtimeDir is \"run/sniffguard\"",
        ),
        (
            vec!["--set-string", "runtimeDir=/run/../etc"],
            "runtimeDir is \"/run/../etc\"",
        ),
        (
            vec!["--set-string", "runtimeDir=/run/x;reboot"],
            "runtimeDir is \"/run/x;reboot\"",
        ),
    ] {
        let out = helm_template(APPARMOR_FIELD, &args);
        assert!(!out.success(), "{args:?} rendered: {out}");
        assert!(out.stderr.contains(needle), "{args:?}: {out}");
    }
    // Without the Service, a policy without metrics is fine.
    render(
        APPARMOR_FIELD,
        &[
            "--set-string",
            "policy=default_environment = \"ci\"",
            "--set",
            "metrics.service.enabled=false",
        ],
    );
}

/// The validator is what catches a broken manifest: a misspelt field, a field one level
/// too high, a wrong type, a missing required field, and a field too new for the version.
#[test]
fn validator_refuses_what_the_api_server_would() {
    let text = render(APPARMOR_FIELD, &[]);
    let docs = documents(&text, "the chart");
    let daemonset = daemonset(&docs, AGENT).clone();
    let as_yaml = |doc: &Value| serde_yaml::to_string(doc).unwrap();
    assert!(validate(&as_yaml(&daemonset), Some(APPARMOR_FIELD)).success());
    let expect_error = |edit: &dyn Fn(&mut Value), version: &str, needle: &str| {
        let mut doc = daemonset.clone();
        edit(&mut doc);
        let out = validate(&as_yaml(&doc), Some(version));
        assert!(
            !out.success() && out.mentions(needle),
            "expected a refusal mentioning {needle:?} for {version}: {out}"
        );
    };
    expect_error(
        &|d| d["spec"]["template"]["spec"]["hostPid"] = json!(true),
        APPARMOR_FIELD,
        "'hostPid' was unexpected",
    );
    expect_error(
        &|d| d["spec"]["hostPID"] = json!(true),
        APPARMOR_FIELD,
        "'hostPID' was unexpected",
    );
    expect_error(
        &|d| d["spec"]["template"]["spec"]["hostPID"] = json!("true"),
        APPARMOR_FIELD,
        "is not of type 'boolean'",
    );
    expect_error(
        &|d| d["spec"]["template"]["spec"]["containers"][0]["args"] = json!("run"),
        APPARMOR_FIELD,
        "is not of type 'array'",
    );
    expect_error(
        &|d| {
            d["spec"]["template"]["spec"]["containers"][0]
                .as_object_mut()
                .unwrap()
                .remove("name");
        },
        APPARMOR_FIELD,
        "'name' is a required property",
    );
    expect_error(
        &|_| {},
        BEFORE_APPARMOR_FIELD,
        "'appArmorProfile' was unexpected",
    );
}

// ---------------------------------------------------------------------------------------
// What the manifests say
// ---------------------------------------------------------------------------------------

/// The supervisor container and the pod spec of the DaemonSet.
fn supervisor_pod() -> (Value, Value) {
    let daemonset = find("DaemonSet", "sniffguard");
    let pod = daemonset["spec"]["template"]["spec"].clone();
    let supervisor = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "supervisor")
        .expect("a container named supervisor")
        .clone();
    (pod, supervisor)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The host path behind the volume mounted at `mount_path` in `container`.
fn host_path_at(pod: &Value, container: &Value, mount_path: &str) -> Option<String> {
    let mount = container["volumeMounts"]
        .as_array()?
        .iter()
        .find(|m| m["mountPath"] == mount_path)?;
    let volume = pod["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == mount["name"])?;
    volume["hostPath"]["path"].as_str().map(str::to_owned)
}

#[test]
fn daemonset_runs_the_supervisor_with_host_pid_and_least_privileges() {
    let (pod, supervisor) = supervisor_pod();
    assert_eq!(
        pod["hostPID"], true,
        "the supervisor must see container PIDs"
    );
    for absent in ["hostNetwork", "hostIPC"] {
        assert!(
            pod.get(absent).is_none_or(|v| v == false),
            "{absent} is not needed"
        );
    }
    assert_eq!(pod["automountServiceAccountToken"], false);
    // The agent runs under the node's default handler like every pod: a RuntimeClass
    // that spared it the shim would be one any pod could name.
    assert!(
        pod.get("runtimeClassName").is_none(),
        "the agent must not name a RuntimeClass"
    );

    let context = &supervisor["securityContext"];
    assert!(
        context.get("privileged").is_none_or(|v| v == false),
        "{context}"
    );
    assert_eq!(context["allowPrivilegeEscalation"], false, "{context}");
    assert_eq!(context["readOnlyRootFilesystem"], true, "{context}");
    assert_eq!(
        strings(&context["capabilities"]["drop"]),
        ["ALL"],
        "{context}"
    );
    let added: BTreeSet<String> = strings(&context["capabilities"]["add"])
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = [
        "BPF",
        "PERFMON",
        "SYS_PTRACE",
        "KILL",
        "DAC_READ_SEARCH",
        "SYS_NICE",
        // The network broker's, kept by it alone (privilege.rs).
        "NET_ADMIN",
        "SYS_ADMIN",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(
        added, expected,
        "capabilities changed: update README.md's Privileges too"
    );

    let command: Vec<String> = strings(&supervisor["command"])
        .into_iter()
        .chain(strings(&supervisor["args"]))
        .collect();
    let after = |flag: &str| {
        command
            .iter()
            .position(|a| a == flag)
            .and_then(|i| command.get(i + 1))
            .cloned()
    };
    assert_eq!(
        command.get(1).map(String::as_str),
        Some("run"),
        "{command:?}"
    );
    let runtime_dir = after("--runtime-dir").expect("--runtime-dir");
    let config = after("--config").expect("--config");
    // The sockets and the policy are the node's, where the shim and the hook look.
    assert_eq!(
        host_path_at(&pod, &supervisor, &runtime_dir).as_deref(),
        Some("/run/sniffguard")
    );
    let policy_dir = Path::new(&config).parent().unwrap().display().to_string();
    assert_eq!(
        host_path_at(&pod, &supervisor, &policy_dir).as_deref(),
        Some("/etc/sniffguard")
    );
    assert_eq!(
        host_path_at(&pod, &supervisor, "/sys/kernel/tracing").as_deref(),
        Some("/sys/kernel/tracing")
    );
}

/// The optional RuntimeClass names the handler both containerd snippets define.
#[test]
fn runtime_class_matches_the_containerd_handler() {
    let class = find("RuntimeClass", "sniffguard");
    let handler = class["handler"].as_str().expect("handler");
    assert_ne!(
        handler, "runc",
        "a RuntimeClass for runc lets any pod skip sniffguard"
    );
    for snippet in containerd_snippets() {
        assert!(
            snippet.runtimes().get(handler).is_some(),
            "no containerd runtime handler {handler:?} in {}",
            snippet.file
        );
    }
}

// ---------------------------------------------------------------------------------------
// The containerd snippets
// ---------------------------------------------------------------------------------------

/// Parses a TOML file (a containerd snippet) into JSON, with the `toml` crate
/// the policy is read with: a file containerd would refuse fails the test.
fn read_toml(text: &str, origin: &str) -> Value {
    let parsed: toml::Value =
        toml::from_str(text).unwrap_or_else(|e| panic!("{origin}: not TOML: {e}"));
    serde_json::to_value(parsed).unwrap_or_else(|e| panic!("{origin}: {e}"))
}

/// One containerd snippet and where its CRI runtime settings live.
struct Snippet {
    file: &'static str,
    doc: Value,
    /// The CRI runtime plugin's table, as the config version names it.
    plugin: &'static str,
}

impl Snippet {
    /// `[plugins."PLUGIN".containerd]`.
    fn containerd(&self) -> &Value {
        &self.doc["plugins"][self.plugin]["containerd"]
    }

    fn runtimes(&self) -> &Map<String, Value> {
        self.containerd()["runtimes"]
            .as_object()
            .unwrap_or_else(|| panic!("{}: no runtimes table", self.file))
    }
}

/// `config/containerd/config.toml` (version 2, containerd 1.6/1.7) and `config-v3.toml`
/// (version 3, containerd 2.x).
fn containerd_snippets() -> Vec<Snippet> {
    [
        (
            "config/containerd/config.toml",
            2,
            "io.containerd.grpc.v1.cri",
        ),
        (
            "config/containerd/config-v3.toml",
            3,
            "io.containerd.cri.v1.runtime",
        ),
    ]
    .into_iter()
    .map(|(file, version, plugin)| {
        let doc = read_toml(&shipped(file), file);
        assert_eq!(doc["version"], version, "{file}");
        let plugins: Vec<&String> = doc["plugins"]
            .as_object()
            .unwrap_or_else(|| panic!("{file}: no plugins table"))
            .keys()
            .collect();
        assert_eq!(plugins, [plugin], "{file}: the CRI runtime plugin only");
        Snippet { file, doc, plugin }
    })
    .collect()
}

/// Every pod goes through sniffguard (the CRI default handler), runc stays defined
/// (containerd 1.6 refuses the CRI plugin when the default names runc and the runtimes
/// lack it, PLATFORM.md), and both handlers run the runc v2 shim with the same cgroup
/// driver; only sniffguard's own annotations reach the shim.
#[test]
fn containerd_snippets_make_sniffguard_the_default_and_keep_runc() {
    let snippets = containerd_snippets();
    for snippet in &snippets {
        let file = snippet.file;
        assert_eq!(
            snippet.containerd()["default_runtime_name"],
            "sniffguard",
            "{file}: every pod must get the sniffguard handler by default"
        );
        let runtimes = snippet.runtimes();
        let names: Vec<&String> = runtimes.keys().collect();
        assert_eq!(names, ["runc", "sniffguard"], "{file}");
        let (runc, sniffguard) = (&runtimes["runc"], &runtimes["sniffguard"]);
        for handler in [runc, sniffguard] {
            assert_eq!(handler["runtime_type"], "io.containerd.runc.v2", "{file}");
        }
        assert_eq!(
            runc["options"]["SystemdCgroup"], sniffguard["options"]["SystemdCgroup"],
            "{file}: both handlers must use the kubelet's cgroup driver"
        );
        assert!(
            runc["options"].get("BinaryName").is_none(),
            "{file}: runc is the real runc"
        );
        assert_eq!(
            sniffguard["options"]["BinaryName"], "/usr/local/bin/sniffguard-runc",
            "{file}"
        );
        // The annotation that may only tighten, and nothing a rule's selector reads.
        assert_eq!(
            sniffguard["pod_annotations"],
            json!(["sniffguard.io/*"]),
            "{file}"
        );
        for key in ["container_annotations", "privileged_without_host_devices"] {
            assert!(
                sniffguard.get(key).is_none(),
                "{file}: {key} is not expected"
            );
        }
    }
    // Both versions say the same.
    assert_eq!(snippets[0].containerd(), snippets[1].containerd());
}

/// The Kubernetes walk-through's containerd snippet is the shipped one with the
/// DaemonSet's install path as the runc binary.
#[test]
fn kubernetes_readme_snippet_is_the_shipped_one_with_the_install_path() {
    let readme = shipped("examples/kubernetes/README.md");
    // The fenced block (indented: it is inside a list item) that starts with the CRI
    // plugin's containerd table.
    let lines: Vec<&str> = readme.lines().map(str::trim).collect();
    let start = lines
        .windows(2)
        .position(|pair| {
            pair == [
                "```toml",
                "[plugins.\"io.containerd.grpc.v1.cri\".containerd]",
            ]
        })
        .expect("the containerd snippet in examples/kubernetes/README.md")
        + 1;
    let end = start
        + lines[start..]
            .iter()
            .position(|line| *line == "```")
            .expect("the end of the snippet");
    let text = lines[start..end].join("\n");
    let shown = read_toml(&text, "examples/kubernetes/README.md");
    let shipped_v2 = &containerd_snippets()[0];
    let mut expected = shipped_v2.containerd().clone();
    expected["runtimes"]["sniffguard"]["options"]["BinaryName"] =
        json!("/opt/sniffguard/bin/sniffguard-runc");
    assert_eq!(
        shown["plugins"]["io.containerd.grpc.v1.cri"]["containerd"], expected,
        "the README's snippet differs from config/containerd/config.toml"
    );
    // That path is where the DaemonSet's install step puts the wrapper.
    let (pod, _) = supervisor_pod();
    let install = pod["initContainers"][0]["command"][2]
        .as_str()
        .expect("the install script");
    assert!(
        install.contains("/host/opt/sniffguard/bin/$bin") && install.contains("sniffguard-runc"),
        "{install}"
    );
    assert_eq!(
        host_path_at(&pod, &pod["initContainers"][0], "/host/opt/sniffguard/bin").as_deref(),
        Some("/opt/sniffguard/bin")
    );
}

/// The install step of the DaemonSet, run against a scratch directory standing for the
/// node and the image: it installs the binaries and writes a runtime.env that the
/// shipped wrapper accepts.
#[test]
fn daemonset_install_step_installs_shim_hook_wrapper_and_settings() {
    let (pod, _) = supervisor_pod();
    let install = pod["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "install")
        .expect("an init container named install");
    let command = strings(&install["command"]);
    assert_eq!(&command[..2], ["/bin/sh", "-c"]);
    let scratch = temp_dir("sniffguard-install-");
    let root = scratch.path();
    let rooted = |p: &str| format!("{}{p}", root.display());
    let script = command[2]
        .replace("/host/", &rooted("/host/"))
        .replace("/usr/local/bin/", &rooted("/image/bin/"))
        .replace("/config/", &rooted("/config/"));
    for dir in [
        "/host/opt/sniffguard/bin",
        "/host/etc/sniffguard",
        "/image/bin",
        "/config",
    ] {
        fs::create_dir_all(rooted(dir)).unwrap();
    }
    for bin in ["sniffguard-runtime", "sniffguard-hook", "sniffguard-runc"] {
        fs::write(
            rooted(&format!("/image/bin/{bin}")),
            format!("#!/bin/sh\n# {bin}\n"),
        )
        .unwrap();
    }
    fs::write(
        rooted("/config/sniffguard.toml"),
        "default_environment = \"ci\"\n",
    )
    .unwrap();
    let out = run_command(
        Command::new("sh").arg("-c").arg(&script),
        Duration::from_secs(30),
    );
    assert!(out.success(), "install step failed: {out}");
    for bin in ["sniffguard-runtime", "sniffguard-hook", "sniffguard-runc"] {
        let path = rooted(&format!("/host/opt/sniffguard/bin/{bin}"));
        let mode =
            fs::metadata(&path).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
        assert_eq!(mode.ok().map(|m| m & 0o777), Some(0o755), "{path}");
    }
    assert!(Path::new(&rooted("/host/etc/sniffguard/sniffguard.toml")).is_file());
    let env = fs::read_to_string(rooted("/host/etc/sniffguard/runtime.env")).unwrap();
    // The wrapper runs with this file: it must accept every line and hand over to the
    // installed shim with the settings the file names.
    let fake_shim = root.join("fake-shim");
    fs::write(
        &fake_shim,
        "#!/bin/sh\nenv | grep '^SNIFFGUARD_' | sort\necho \"args: $*\"\n",
    )
    .unwrap();
    fs::set_permissions(
        &fake_shim,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let env_path = rooted("/host/etc/sniffguard/runtime.env");
    let out = run_command(
        Command::new("sh")
            .arg(repo_root().join("config/sniffguard-runc"))
            .args(["--root", "/x", "state", "c1"])
            .env("SNIFFGUARD_ENV_FILE", &env_path)
            .env("SNIFFGUARD_SHIM", &fake_shim),
        Duration::from_secs(30),
    );
    assert!(
        out.success(),
        "the wrapper refused the installed runtime.env:\n{env}\n{out}"
    );
    for line in [
        "SNIFFGUARD_HOOK=/opt/sniffguard/bin/sniffguard-hook",
        "SNIFFGUARD_RUNTIME_DIR=/run/sniffguard",
        "SNIFFGUARD_CONFIG=/etc/sniffguard/sniffguard.toml",
        "SNIFFGUARD_REAL_RUNTIME=runc",
        "args: --root /x state c1",
    ] {
        assert!(out.stdout.contains(line), "no {line:?}: {out}");
    }
    assert!(
        env.contains("SNIFFGUARD_SHIM=/opt/sniffguard/bin/sniffguard-runtime"),
        "{env}"
    );
}

/// The policy in the ConfigMap is one `sniffguard check-config` accepts, and maps the
/// namespaces to environments for both CRI annotation styles.
#[test]
fn policy_configmap_passes_check_config() {
    let map = find("ConfigMap", "sniffguard-policy");
    let policy = map["data"]["sniffguard.toml"]
        .as_str()
        .expect("data.sniffguard.toml");
    let dir = temp_dir("sniffguard-k8s-policy-");
    let path = dir.path().join("sniffguard.toml");
    fs::write(&path, policy).unwrap();
    let out = run_command(
        Command::new(sniffguard_bin())
            .arg("check-config")
            .arg(&path),
        Duration::from_secs(30),
    );
    assert!(out.success(), "{out}");
    for line in [
        "ci (default): mode=audit",
        "staging: mode=enforce",
        "production: mode=enforce fail=closed",
    ] {
        assert!(out.stdout.contains(line), "no {line:?}: {out}");
    }
    for pattern in ["prod-*", "staging*"] {
        assert!(
            policy.contains(&format!("namespace = \"{pattern}\""))
                && policy.contains(&format!(
                    "\"io.kubernetes.cri.sandbox-namespace\" = \"{pattern}\""
                )),
            "the policy must map {pattern} for CRI-O and for containerd"
        );
    }
    // The example grants the workload nothing: no rule loosens on a key a workload
    // could write, no exception.
    assert!(!out.stdout.contains("warning:"), "{out}");
}

// ---------------------------------------------------------------------------------------
// What the example policy gives each pod
// ---------------------------------------------------------------------------------------

/// The example policy, parsed.
fn example_policy() -> Policy {
    let map = find("ConfigMap", "sniffguard-policy");
    let text = map["data"]["sniffguard.toml"]
        .as_str()
        .expect("data.sniffguard.toml");
    Policy::parse(text, "examples/kubernetes/sniffguard.yaml").unwrap_or_else(|e| panic!("{e}"))
}

/// How a CRI stack presents a pod's container to the runtime, as far as the policy's
/// selectors go.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cri {
    /// containerd's CRI plugin: `io.kubernetes.cri.*` from the pod's metadata, written
    /// after the pod annotations the handler's `pod_annotations` lets through.
    Containerd,
    /// CRI-O: every pod annotation, then the kubelet's `io.kubernetes.pod.*` and
    /// `io.kubernetes.container.name` labels over them.
    CriO,
}

/// The OCI annotations of container `container` of a pod in `namespace` named `pod`
/// with `pod_annotations`, as `cri` writes them (containerd: filtered by the shipped
/// runtime handler's `pod_annotations`).
fn oci_annotations(
    cri: Cri,
    namespace: &str,
    pod: &str,
    container: &str,
    pod_annotations: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match cri {
        Cri::Containerd => {
            let snippet = &containerd_snippets()[0];
            let passed: Vec<Pattern> =
                strings(&snippet.runtimes()["sniffguard"]["pod_annotations"])
                    .into_iter()
                    .map(Pattern)
                    .collect();
            for (key, value) in pod_annotations {
                if passed.iter().any(|p| p.matches(key)) {
                    out.insert(key.clone(), value.clone());
                }
            }
            out.insert(keys::CRI_NAMESPACE.to_owned(), namespace.to_owned());
            out.insert(keys::CRI_POD.to_owned(), pod.to_owned());
            out.insert(keys::CRI_CONTAINER.to_owned(), container.to_owned());
        }
        Cri::CriO => {
            out.extend(pod_annotations.clone());
            out.insert(keys::NAMESPACE.to_owned(), namespace.to_owned());
            out.insert(keys::POD.to_owned(), pod.to_owned());
            out.insert(keys::CONTAINER.to_owned(), container.to_owned());
        }
    }
    out
}

fn resolve<'a>(policy: &'a Policy, annotations: &BTreeMap<String, String>) -> Resolution<'a> {
    policy
        .resolve_environment(annotations)
        .unwrap_or_else(|e| panic!("{annotations:?}: {e}"))
}

/// Every demo pod gets its namespace's environment under both CRI stacks, needs no
/// RuntimeClass, and the demo's only annotation makes its pod stricter, never looser.
#[test]
fn demo_pods_get_their_namespace_environment_and_annotations_only_tighten() {
    let policy = example_policy();
    let expected: BTreeMap<&str, &str> = [
        ("ci-builds", "ci"),
        ("staging", "staging"),
        ("prod-shop", "production"),
    ]
    .into_iter()
    .collect();
    let pods: Vec<Value> = manifests()
        .into_iter()
        .filter(|(path, _)| path.ends_with("demo.yaml"))
        .flat_map(|(_, docs)| docs)
        .filter(|doc| doc["kind"] == "Pod")
        .collect();
    assert!(pods.len() >= 4, "{pods:#?}");
    let mut tightened = 0;
    for pod in &pods {
        let namespace = pod["metadata"]["namespace"].as_str().expect("a namespace");
        let name = pod["metadata"]["name"].as_str().expect("a name");
        assert!(
            pod["spec"].get("runtimeClassName").is_none(),
            "{namespace}/{name}: the default handler runs every pod through sniffguard"
        );
        let pod_annotations: BTreeMap<String, String> = pod["metadata"]["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let namespace_environment = expected
            .get(namespace)
            .unwrap_or_else(|| panic!("{namespace}: not a demo namespace"));
        for container in pod["spec"]["containers"].as_array().expect("containers") {
            let container = container["name"].as_str().expect("a container name");
            for cri in [Cri::Containerd, Cri::CriO] {
                let without = oci_annotations(cri, namespace, name, container, &BTreeMap::new());
                let by_namespace = resolve(&policy, &without);
                assert_eq!(
                    by_namespace.name, *namespace_environment,
                    "{cri:?} {namespace}/{name}"
                );
                assert!(
                    matches!(by_namespace.chosen_by, ChosenBy::Rule(_)),
                    "{cri:?} {namespace}/{name}: {}",
                    by_namespace.describe()
                );
                let with = oci_annotations(cri, namespace, name, container, &pod_annotations);
                let resolved = resolve(&policy, &with);
                assert_eq!(
                    resolved.ignored_annotation, None,
                    "{cri:?} {namespace}/{name}"
                );
                match pod_annotations.get(ENVIRONMENT_ANNOTATION) {
                    None => assert_eq!(resolved.name, by_namespace.name),
                    Some(wanted) => {
                        assert_eq!(resolved.name, wanted, "{cri:?} {namespace}/{name}");
                        assert!(
                            resolved.environment.strictness()
                                > by_namespace.environment.strictness(),
                            "{cri:?} {namespace}/{name}: the demo's annotation must tighten"
                        );
                        assert!(
                            resolved.describe().starts_with(&format!(
                                "annotation, stricter than \"{}\" from rule ",
                                by_namespace.name
                            )),
                            "{cri:?} {namespace}/{name}: {}",
                            resolved.describe()
                        );
                        tightened += 1;
                    }
                }
            }
        }
    }
    assert!(tightened > 0, "no demo pod shows an annotation tightening");
}

/// What the example policy must refuse a pod: an annotation asking for a looser
/// environment is ignored, and under CRI-O (which passes every pod annotation) a pod
/// that writes containerd's namespace key itself reaches no rule looser than its own
/// namespace's.
#[test]
fn example_policy_gives_a_pod_nothing_looser_than_its_namespace() {
    let policy = example_policy();
    let asked = BTreeMap::from([(ENVIRONMENT_ANNOTATION.to_owned(), "ci".to_owned())]);
    for cri in [Cri::Containerd, Cri::CriO] {
        let resolved = resolve(
            &policy,
            &oci_annotations(cri, "prod-shop", "web", "app", &asked),
        );
        assert_eq!(resolved.name, "production", "{cri:?}");
        assert_eq!(
            resolved.ignored_annotation.as_deref(),
            Some("ci"),
            "{cri:?}"
        );
    }
    let namespaces = [
        "prod-shop",
        "staging",
        "staging-eu",
        "ci-builds",
        "kube-system",
        "dev",
    ];
    for own in namespaces {
        let honest = resolve(
            &policy,
            &oci_annotations(Cri::CriO, own, "p", "c", &BTreeMap::new()),
        );
        for claimed in namespaces {
            let forged = BTreeMap::from([(keys::CRI_NAMESPACE.to_owned(), claimed.to_owned())]);
            let resolved = resolve(&policy, &oci_annotations(Cri::CriO, own, "p", "c", &forged));
            assert!(
                resolved.environment.strictness() >= honest.environment.strictness(),
                "CRI-O pod in {own} claiming {claimed}: {} ({}) instead of {}",
                resolved.name,
                resolved.describe(),
                honest.name
            );
        }
    }
}

/// The agent's own pods (the supervisor's and the fd keeper's) run through the shim
/// (no RuntimeClass), so their namespace must get an environment that starts without a
/// supervisor and takes no capability: the first agent on a node has no supervisor to
/// talk to, and the keeper may start before it.
#[test]
fn the_agent_namespace_fails_open_and_keeps_its_capabilities() {
    let policy = example_policy();
    let mut checked = BTreeSet::new();
    for daemonset in [find("DaemonSet", AGENT), find("DaemonSet", KEEPER)] {
        let set = daemonset["metadata"]["name"].as_str().expect("a name");
        let namespace = daemonset["metadata"]["namespace"]
            .as_str()
            .expect("namespace");
        let pod = &daemonset["spec"]["template"]["spec"];
        for container in pod["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(pod["containers"].as_array().into_iter().flatten())
        {
            let name = container["name"].as_str().expect("a container name");
            checked.insert(format!("{set}/{name}"));
            the_agent_container_fails_open(&policy, namespace, name);
        }
    }
    assert_eq!(
        checked.into_iter().collect::<Vec<_>>(),
        [
            "sniffguard-keeper/keeper",
            "sniffguard/install",
            "sniffguard/supervisor"
        ]
    );
}

/// One of the agent's containers gets an environment that fails open and drops no
/// capability, under containerd's annotations and CRI-O's.
fn the_agent_container_fails_open(policy: &Policy, namespace: &str, name: &str) {
    for cri in [Cri::Containerd, Cri::CriO] {
        let resolved = resolve(
            policy,
            &oci_annotations(cri, namespace, "sniffguard-x", name, &BTreeMap::new()),
        );
        let environment = resolved.environment;
        assert_eq!(
            environment.fail,
            sniffguard_common::policy::FailPolicy::Open,
            "{cri:?} {namespace}/{name} is in {}",
            resolved.name
        );
        assert!(
            environment.dropped_capabilities().is_empty(),
            "{cri:?} {namespace}/{name} is in {}, which drops capabilities",
            resolved.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// Docker, Podman hooks.d, systemd
// ---------------------------------------------------------------------------------------

#[test]
fn docker_daemon_json_names_the_wrapper() {
    let doc: Value = serde_json::from_str(&shipped("config/docker/daemon.json"))
        .expect("config/docker/daemon.json is JSON");
    let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["runtimes"],
        "only the runtimes key: merge it into an existing daemon.json"
    );
    assert_eq!(
        doc["runtimes"]["sniffguard"],
        json!({"path": "/usr/local/bin/sniffguard-runc"})
    );
    // One entry per environment of the shipped policy, named for it, naming it
    // through the shim's own --environment flag (Docker before 24 passes no
    // annotation to choose one with).
    let policy: toml::Value = toml::from_str(&shipped("config/sniffguard.toml")).unwrap();
    let environments: BTreeSet<&String> =
        policy["environments"].as_table().unwrap().keys().collect();
    let mut entries = BTreeSet::new();
    for (name, entry) in doc["runtimes"].as_object().unwrap() {
        let Some(environment) = name.strip_prefix("sniffguard-") else {
            continue;
        };
        assert_eq!(
            entry,
            &json!({
                "path": "/usr/local/bin/sniffguard-runc",
                "runtimeArgs": ["--environment", environment]
            }),
            "runtime {name}"
        );
        entries.insert(environment.to_string());
    }
    let environments: BTreeSet<String> = environments.into_iter().cloned().collect();
    assert_eq!(entries, environments, "one runtime entry per environment");
}

/// Schema 1.0.0 of containers/common's hooks.d (oci-hooks(5)): only its fields, stages
/// it knows, and a sniffguard-hook invocation the hook's CLI takes.
#[test]
fn hooks_d_files_follow_schema_1_0_0() {
    let dir = repo_root().join("config/podman/hooks.d");
    let mut stages_seen = BTreeSet::new();
    let mut environments = BTreeSet::new();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.display().to_string();
        let doc: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let only = |value: &Value, allowed: &[&str], what: &str| {
            for key in value
                .as_object()
                .unwrap_or_else(|| panic!("{name}: {what} is not an object"))
                .keys()
            {
                assert!(
                    allowed.contains(&key.as_str()),
                    "{name}: unknown field {what}.{key}"
                );
            }
        };
        only(&doc, &["version", "hook", "when", "stages"], "the document");
        only(&doc["hook"], &["path", "args", "env", "timeout"], "hook");
        only(
            &doc["when"],
            &["always", "annotations", "commands", "hasBindMounts"],
            "when",
        );
        assert_eq!(doc["version"], "1.0.0", "{name}");
        assert!(
            doc["hook"]["path"]
                .as_str()
                .is_some_and(|p| p.starts_with('/')),
            "{name}"
        );
        let stages = strings(&doc["stages"]);
        assert!(!stages.is_empty(), "{name}: no stages");
        for stage in &stages {
            assert!(
                [
                    "prestart",
                    "createRuntime",
                    "createContainer",
                    "startContainer",
                    "poststart",
                    "poststop"
                ]
                .contains(&stage.as_str()),
                "{name}: unknown stage {stage}"
            );
        }
        let args = strings(&doc["hook"]["args"]);
        let after = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        assert_eq!(&args[..2], ["sniffguard-hook", "hook"], "{name}");
        let stage_arg = after("--stage").expect("--stage");
        match stage_arg.as_str() {
            "create-runtime" => {
                assert_eq!(stages, ["createRuntime"], "{name}");
                let environment = after("--environment").expect("--environment");
                // The hook runs only for containers that carry this environment.
                let when = &doc["when"]["annotations"];
                assert_eq!(
                    when["^sniffguard\\.io/environment$"],
                    json!(format!("^{environment}$")),
                    "{name}"
                );
                environments.insert(environment);
            }
            "poststop" => assert_eq!(stages, ["poststop"], "{name}"),
            other => panic!("{name}: unexpected --stage {other}"),
        }
        assert!(
            ["open", "closed"].contains(&after("--fail").unwrap_or_default().as_str()),
            "{name}"
        );
        stages_seen.extend(stages);
    }
    assert!(stages_seen.contains("createRuntime") && stages_seen.contains("poststop"));
    let expected: BTreeSet<String> = ["ci", "staging", "production"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        environments, expected,
        "one registration file per built-in environment"
    );
}

/// `systemd-analyze verify` accepts the unit without a warning (unknown keys are only
/// warnings there), with its binary paths pointed at the built supervisor.
#[test]
fn systemd_unit_verifies() {
    if find_in_path("systemd-analyze").is_none() {
        eprintln!("\n**** SKIPPED: systemd-analyze not installed ****\n");
        return;
    }
    let unit = shipped("config/systemd/sniffguard.service");
    assert!(
        unit.contains("\nType=notify\n"),
        "the daemon sends READY=1: the unit waits for it"
    );
    assert!(unit.contains("\nRestart=on-failure\n"));
    // What the supervisor needs at start-up and then drops: its own bounding
    // set (CAP_SETPCAP) and the parent of the cgroup leaves it makes.
    let bounding = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("a CapabilityBoundingSet");
    for cap in [
        "CAP_SETPCAP",
        "CAP_DAC_OVERRIDE",
        "CAP_BPF",
        "CAP_SYS_PTRACE",
    ] {
        assert!(
            bounding.split_whitespace().any(|c| c == cap),
            "{cap} missing: {bounding}"
        );
    }
    let documentation = unit
        .lines()
        .find_map(|l| l.strip_prefix("Documentation=file:"))
        .expect("a Documentation= file");
    assert!(
        shipped("config/systemd/README.md").contains(documentation),
        "the systemd README installs nothing at {documentation}"
    );
    let dir = temp_dir("sniffguard-unit-");
    let path = dir.path().join("sniffguard.service");
    fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/sniffguard",
            &sniffguard_bin().display().to_string(),
        ),
    )
    .unwrap();
    let out = run_command(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path),
        Duration::from_secs(60),
    );
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.trim().is_empty() && out.stderr.trim().is_empty(),
        "{out}"
    );
}

/// Issue 20: the chart's fd keeper is a DaemonSet of its own (a keeper in the
/// supervisor's host-pid pod dies with its container): resident, in the host's pid
/// namespace (it hands fds only to processes of its own), on the supervisor's runtime
/// directory (one value for both), with no capability and no way to gain one, no
/// liveness probe, and a rolling update that starts the new keeper before the old one
/// goes (the handover). It shares the agent's image and placement, and neither
/// DaemonSet nor the metrics Service selects the other's pods. Checked with the default
/// values (and in the plain manifests, which are that rendering) and with values that
/// change every knob.
#[test]
fn keeper_daemonset_lives_apart_from_the_supervisor() {
    let dir = temp_dir("sniffguard-values-");
    let values = dir.path().join("values.yaml");
    fs::write(&values, NON_DEFAULT_VALUES).unwrap();
    let values = values.display().to_string();
    for (args, runtime_dir, priority, memory) in [
        (vec![], "/run/sniffguard", "system-node-critical", "128Mi"),
        (
            vec!["--values", values.as_str()],
            "/var/run/sniffguard-node",
            "sniffguard-keeper-critical",
            "64Mi",
        ),
    ] {
        let what = format!("the chart with {args:?}");
        let docs = documents(&render(APPARMOR_FIELD, &args), &what);
        let keeper = daemonset(&docs, KEEPER);
        check_keeper(&docs, &what, runtime_dir);
        let pod = &keeper["spec"]["template"]["spec"];
        assert_eq!(pod["priorityClassName"], priority, "{what}");
        assert_eq!(
            pod["containers"][0]["resources"]["limits"]["memory"], memory,
            "{what}"
        );
        if args.is_empty() {
            assert_eq!(
                &find("DaemonSet", KEEPER),
                keeper,
                "the plain manifests carry the chart's keeper"
            );
        }
    }
}

/// What every rendering of the keeper must hold (`keeper_daemonset_lives_apart_from_the_supervisor`).
fn check_keeper(docs: &[Value], what: &str, runtime_dir: &str) {
    let keeper = daemonset(docs, KEEPER);
    let agent = daemonset(docs, AGENT);
    let pod = &keeper["spec"]["template"]["spec"];
    let agent_pod = &agent["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true, "{what}: {pod}");
    assert_eq!(pod["automountServiceAccountToken"], false, "{what}");
    assert_eq!(
        pod["serviceAccountName"], agent_pod["serviceAccountName"],
        "{what}"
    );
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(
        containers.len(),
        1,
        "{what}: the keeper's pod runs the keeper alone"
    );
    assert!(pod.get("initContainers").is_none(), "{what}");
    let container = &containers[0];
    let command: Vec<String> = strings(&container["command"])
        .into_iter()
        .chain(strings(&container["args"]))
        .collect();
    assert_eq!(
        command.get(1).map(String::as_str),
        Some("keeper"),
        "{what}: {command:?}"
    );
    assert!(
        command.iter().any(|a| a == "--resident"),
        "{what}: {command:?}"
    );
    assert!(
        command
            .windows(2)
            .any(|w| w == ["--runtime-dir", runtime_dir]),
        "{what}: {command:?}"
    );

    // The same node directory as the supervisor's, mounted where each looks for it.
    let supervisor = agent_pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "supervisor")
        .expect("a container named supervisor");
    assert_eq!(
        host_path_at(pod, container, runtime_dir).as_deref(),
        Some(runtime_dir),
        "{what}"
    );
    assert_eq!(
        host_path_at(agent_pod, supervisor, runtime_dir).as_deref(),
        Some(runtime_dir),
        "{what}: the keeper and the supervisor must share the runtime directory"
    );
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["hostPath"]["path"] == runtime_dir)
        .expect("the runtime directory's volume");
    assert_eq!(volume["hostPath"]["type"], "DirectoryOrCreate", "{what}");

    let context = &container["securityContext"];
    assert_eq!(context["runAsUser"], 0, "{what}: {context}");
    assert!(
        context.get("privileged").is_none_or(|v| v == false),
        "{what}: {context}"
    );
    assert_eq!(
        context["allowPrivilegeEscalation"], false,
        "{what}: {context}"
    );
    assert_eq!(context["readOnlyRootFilesystem"], true, "{what}: {context}");
    assert_eq!(
        strings(&context["capabilities"]["drop"]),
        ["ALL"],
        "{what}: {context}"
    );
    assert!(
        context["capabilities"].get("add").is_none(),
        "{what}: {context}"
    );
    assert!(
        container.get("livenessProbe").is_none(),
        "{what}: a restart loses nothing only while the supervisor runs"
    );

    let rolling = &keeper["spec"]["updateStrategy"];
    assert_eq!(rolling["type"], "RollingUpdate", "{what}: {rolling}");
    assert_eq!(rolling["rollingUpdate"]["maxSurge"], 1, "{what}: {rolling}");
    assert_eq!(
        rolling["rollingUpdate"]["maxUnavailable"], 0,
        "{what}: {rolling}"
    );
    assert_eq!(keeper["spec"]["minReadySeconds"], 5, "{what}");

    // Shared with the agent: what it runs and where it may run.
    for key in ["image", "imagePullPolicy"] {
        assert_eq!(container[key], supervisor[key], "{what}: {key}");
    }
    for key in [
        "imagePullSecrets",
        "nodeSelector",
        "affinity",
        "tolerations",
    ] {
        assert_eq!(pod.get(key), agent_pod.get(key), "{what}: {key}");
    }

    // Two DaemonSets whose selectors overlapped would fight over each other's pods;
    // the metrics Service must reach the supervisors only.
    let keeper_labels = &keeper["spec"]["template"]["metadata"]["labels"];
    let agent_labels = &agent["spec"]["template"]["metadata"]["labels"];
    assert!(
        selects(&keeper["spec"]["selector"]["matchLabels"], keeper_labels),
        "{what}"
    );
    assert!(
        !selects(&keeper["spec"]["selector"]["matchLabels"], agent_labels),
        "{what}"
    );
    assert!(
        !selects(&agent["spec"]["selector"]["matchLabels"], keeper_labels),
        "{what}"
    );
    for service in docs.iter().filter(|d| d["kind"] == "Service") {
        assert!(
            !selects(&service["spec"]["selector"], keeper_labels),
            "{what}: {} selects the keeper's pods",
            service["metadata"]["name"]
        );
    }
}
