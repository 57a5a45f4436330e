//! A Kubernetes node as the kubelet drives it: a real containerd 1.6 (Debian 12) with its
//! CRI plugin and the shipped `config/containerd/config.toml` merged into its config, and
//! a CRI client (the `k8s-cri` crate over tonic, on containerd's Unix socket) making the
//! calls the kubelet makes for a pod — `Status`, `ImageStatus`, `RunPodSandbox` with the
//! pod's metadata, `CreateContainer`/`StartContainer`, `ExecSync` for `kubectl exec`, and
//! `StopPodSandbox`/`RemovePodSandbox`. The policy is the Helm chart's
//! (`deploy/helm/sniffguard/files/sniffguard.toml`) with two rules added for this test's `stg-*`
//! namespaces, written the way the example writes its own.
//!
//! The config is built as a node operator merges the snippet into the node's
//! `config.toml`, table by table (containerd 1.6's `imports` would not do: an imported
//! file replaces the node's whole `io.containerd.grpc.v1.cri` table, sandbox image and
//! snapshotter included). The node's own settings keep containerd private to the test
//! (root, state, sockets, CNI directories), name the sandbox image (no registry is
//! reachable) and choose the `native` snapshotter (plain copies, no overlay mounts). Two
//! values of the snippet are changed as the operator of this host would: `BinaryName`
//! (the wrapper is installed elsewhere) and `SystemdCgroup = false` (the kubelet's cgroup
//! driver here: this host's init is not systemd). The images are the test rootfs
//! (busybox and tcpdump) imported into containerd's `k8s.io` namespace: one for the
//! containers, and one whose command is a long `sleep` as the pod sandbox ("pause")
//! image. Pods use the host's network, so no CNI plugin is needed.
//!
//! Each test starts its own supervisor and containerd. On the way out (also when an
//! assertion fails) the pods are stopped and removed through CRI, then the containerd
//! guard (`wiring/containerd.rs`) kills what is left, stops containerd by its PID, kills
//! its leftover shims and unmounts what is left under its directory; the test's cgroup
//! parent is removed last.
//!
//! Needs root, containerd (with ctr), runc, protoc at build time (k8s-cri's build script)
//! and the built workspace.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod wiring;

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::security_profile::ProfileType;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ExecSyncRequest, ExecSyncResponse,
    ImageSpec, ImageStatusRequest, LinuxContainerConfig, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, RemovePodSandboxRequest, RunPodSandboxRequest,
    SecurityProfile, StartContainerRequest, StatusRequest, StopPodSandboxRequest, VersionRequest,
};
use serde_json::{json, Value};
use sniffguard_tests::{
    is_alert_for, require_root, str_at, strip_ansi, Runtime, Supervisor, ALERT_TIMEOUT,
    ENVIRONMENT_ANNOTATION,
};
use tonic::transport::{Channel, Endpoint, Uri};
use wiring::containerd::{private_keys, private_tables, Containerd};
use wiring::{remove_empty_cgroups, replace_once, shipped, wait_alert, ShimWrapper};

/// The namespace containerd's CRI plugin keeps its containers and images in.
const K8S_NAMESPACE: &str = "k8s.io";

/// The containers' image: the test rootfs, `sh` by default.
const IMAGE: &str = "localhost/sniffguard-cri:test";

/// The pod sandbox image (`sandbox_image`): the test rootfs sleeping. A real node pulls
/// `registry.k8s.io/pause`; no registry is reachable here, and any long-running command
/// plays its part (it only holds the pod's namespaces).
const SANDBOX_IMAGE: &str = "localhost/sniffguard-pause:test";

/// The sandbox image's command.
const SANDBOX_COMMAND: &[&str] = &["sleep", "2147483647"];

/// The runtime handler the shipped snippet defines (and makes the default).
const HANDLER: &str = "sniffguard";

/// Bound for one CRI call (creating a container unpacks the image on first use).
const CRI_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound for the CRI plugin to report the runtime ready, and for an imported image to
/// reach the CRI plugin's image store (it learns of it from containerd's events).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound for a container's output to reach its log file.
const LOG_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound for each clean-up call.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Polling interval of the bounded waits here.
const POLL: Duration = Duration::from_millis(50);

/// What a container runs: try tcpdump once, say how it ended, then stay up for
/// `ExecSync` (the pod is stopped by the test).
const TCPDUMP_ONCE: &str = "tcpdump -D; echo tcpdump_rc=$?; exec sleep 600";

/// The Kubernetes policy the chart ships (its ConfigMap's `sniffguard.toml`), with
/// rules for `stg-*` namespaces inserted before its own staging rules, in its form
/// (containerd's key by name, then `namespace =`), and without the metrics listener
/// (a fixed port that parallel tests would share).
fn policy() -> String {
    let text = shipped("deploy/helm/sniffguard/files/sniffguard.toml");
    let text = replace_once(
        &text,
        "[[rules]]\nenvironment = \"staging\"\nannotations",
        "[[rules]]\nenvironment = \"staging\"\n\
         annotations = { \"io.kubernetes.cri.sandbox-namespace\" = \"stg-*\" }\n\n\
         [[rules]]\nenvironment = \"staging\"\nnamespace = \"stg-*\"\n\n\
         [[rules]]\nenvironment = \"staging\"\nannotations",
        "the example policy",
    );
    replace_once(
        &text,
        "listen = \"0.0.0.0:9464\"\n",
        "",
        "the example policy",
    )
}

/// The number of the policy's rule that maps `stg-*` by containerd's namespace key
/// (the first rule that matches a pod under containerd): after the example's two
/// production rules.
const STG_RULE: &str = "rule 3";

/// The number of the example's first `ci-*` rule once the two `stg-*` rules are in.
const CI_RULE: &str = "rule 7";

/// The snippet under test, and the wrapper path it names.
const SNIPPET: &str = "config/containerd/config.toml";
const SNIPPET_BINARY: &str = "/usr/local/bin/sniffguard-runc";

/// containerd's config as a node operator ends up with it: the node's own settings (here:
/// private paths, the CRI plugin's sandbox image, snapshotter, CNI directories) with the
/// shipped snippet merged in table by table, the wrapper installed where the test put it
/// and the node's cgroup driver (cgroupfs: this host's init is not systemd).
fn containerd_config(root: &Path, wrapper: &Path) -> String {
    let mut config: toml::Table = toml::from_str(&format!(
        "version = 2\n{}{}",
        private_keys(root),
        private_tables(root)
    ))
    .expect("the private settings are TOML");
    let node: toml::Table = toml::from_str(&format!(
        "[plugins.\"io.containerd.grpc.v1.cri\"]\n\
         sandbox_image = \"{SANDBOX_IMAGE}\"\n\
         stream_server_address = \"127.0.0.1\"\n\
         stream_server_port = \"0\"\n\
         restrict_oom_score_adj = {restrict_oom}\n\
         [plugins.\"io.containerd.grpc.v1.cri\".cni]\n\
         bin_dir = \"{r}/cni/bin\"\n\
         conf_dir = \"{r}/cni/net.d\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n\
         snapshotter = \"native\"\n",
        r = root.display(),
        restrict_oom = !has_cap_sys_resource(),
    ))
    .expect("the node's CRI settings are TOML");
    merge(&mut config, node);
    let snippet: toml::Table =
        toml::from_str(&shipped(SNIPPET)).unwrap_or_else(|e| panic!("{SNIPPET} is not TOML: {e}"));
    merge(&mut config, snippet);

    let runtimes = [
        "plugins",
        "io.containerd.grpc.v1.cri",
        "containerd",
        "runtimes",
    ]
    .iter()
    .try_fold(&mut config, |table, key| {
        table.get_mut(*key).and_then(toml::Value::as_table_mut)
    })
    .unwrap_or_else(|| panic!("{SNIPPET} defines no CRI runtimes"));
    let mut wrappers = 0;
    for options in runtimes
        .iter_mut()
        .filter_map(|(_, runtime)| runtime.get_mut("options")?.as_table_mut())
    {
        if options.get("BinaryName").and_then(toml::Value::as_str) == Some(SNIPPET_BINARY) {
            options.insert("BinaryName".into(), wrapper.display().to_string().into());
            wrappers += 1;
        }
        if options.contains_key("SystemdCgroup") {
            options.insert("SystemdCgroup".into(), false.into());
        }
    }
    assert_eq!(
        wrappers, 1,
        "{SNIPPET}: one runtime with BinaryName {SNIPPET_BINARY}"
    );
    format!(
        "# private containerd of a sniffguard CRI test, with {SNIPPET} merged in\n{}",
        toml::to_string(&config).expect("serialise the config")
    )
}

/// Merges `from` into `into` as one merges TOML files by hand: tables key by key, any
/// other value replaced.
fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(mine)), toml::Value::Table(theirs)) => merge(mine, theirs),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// Whether this process holds CAP_SYS_RESOURCE. A kubelet's node has it; a machine
/// that runs these tests inside a container may not, and then runc cannot lower a pod's
/// `oom_score_adj` below its own (the sandbox asks for -998) and every pod fails with
/// "can't get final child's PID from pipe". containerd's `restrict_oom_score_adj` is
/// its setting for that case: it raises the value to containerd's own.
fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .expect("CapEff in /proc/self/status");
    effective & (1 << CAP_SYS_RESOURCE) != 0
}

/// A pod this test started: its sandbox id and the config the kubelet sends again with
/// each `CreateContainer`.
struct Pod {
    id: String,
    config: PodSandboxConfig,
}

impl Pod {
    /// The log file of container `name` (attempt 0), where the kubelet puts it.
    fn log_path(&self, name: &str) -> PathBuf {
        Path::new(&self.config.log_directory)
            .join(name)
            .join("0.log")
    }
}

/// A node: the test's containerd with CRI, a CRI client on its socket, and the pods the
/// test started (stopped and removed on drop, before containerd stops).
struct Node {
    rt: tokio::runtime::Runtime,
    channel: Channel,
    pods: Vec<String>,
    cgroup_parent: String,
    containerd: Containerd,
    _wrapper: ShimWrapper,
    _cgroups: CgroupsGuard,
}

/// Removes the test's cgroup parent (every hierarchy) once its pods are gone.
struct CgroupsGuard(String);

impl Drop for CgroupsGuard {
    fn drop(&mut self) {
        remove_empty_cgroups(&self.0);
    }
}

impl Node {
    /// Starts containerd with the shipped snippet pointing at `sup` through the shipped
    /// wrapper, imports the images, connects a CRI client and waits (bounded) until the
    /// CRI plugin reports the runtime ready and sees both images.
    fn start(sup: &Supervisor, tag: &str) -> Node {
        Node::start_with_runtime(sup, tag, Runtime::Runc)
    }

    /// [`Node::start`] with `runtime` as the real runtime behind the shim (the wrapper's
    /// `SNIFFGUARD_REAL_RUNTIME`).
    fn start_with_runtime(sup: &Supervisor, tag: &str, runtime: Runtime) -> Node {
        let wrapper = ShimWrapper::with_runtime(sup, runtime);
        let wrapper_path = wrapper.path();
        let containerd = Containerd::start_with(
            K8S_NAMESPACE,
            |root| containerd_config(root, &wrapper_path),
            &[(IMAGE, &["sh"]), (SANDBOX_IMAGE, SANDBOX_COMMAND)],
        );
        let cgroup_top = format!("sniffguard-cri-{}-{tag}", std::process::id());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let socket = containerd.socket();
        let channel = rt
            .block_on(async {
                Endpoint::from_static("http://containerd.invalid")
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let socket = socket.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(socket).await?,
                            ))
                        }
                    }))
                    .await
            })
            .unwrap_or_else(|e| panic!("connect to containerd's socket: {e}"));
        let node = Node {
            rt,
            channel,
            pods: Vec::new(),
            cgroup_parent: format!("/{cgroup_top}"),
            containerd,
            _wrapper: wrapper,
            _cgroups: CgroupsGuard(cgroup_top),
        };
        node.wait_ready();
        node
    }

    fn runtime(&self) -> RuntimeServiceClient<Channel> {
        RuntimeServiceClient::new(self.channel.clone())
    }

    fn images(&self) -> ImageServiceClient<Channel> {
        ImageServiceClient::new(self.channel.clone())
    }

    /// Runs one CRI call, bounded by `timeout`; the error says which call and why.
    fn try_call<T>(
        &self,
        timeout: Duration,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, String> {
        // The timer must be made inside the runtime: `timeout` registers with its clock.
        match self
            .rt
            .block_on(async { tokio::time::timeout(timeout, call).await })
        {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    /// [`Node::try_call`] that panics with containerd's log on an error.
    fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> T {
        self.try_call(CRI_TIMEOUT, call).unwrap_or_else(|e| {
            panic!(
                "CRI {what}: {e}\n--- containerd log ---\n{}",
                self.containerd.log()
            )
        })
    }

    /// What the kubelet checks first: the CRI version and the runtime's readiness, then
    /// (per pod) the images. The CRI plugin fails to load when the config is wrong
    /// (containerd still starts and answers `ctr version`): its services then answer
    /// `Unimplemented`, and containerd's log says why.
    fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let last = match self.try_call(
                CRI_TIMEOUT,
                self.runtime().version(VersionRequest::default()),
            ) {
                Ok(version) => {
                    assert_eq!(version.runtime_name, "containerd", "{version:?}");
                    break;
                }
                Err(e) => e,
            };
            // A CRI plugin that failed to load never registers its services.
            assert!(
                !last.starts_with("Unimplemented"),
                "containerd runs without its CRI plugin ({last})\n--- containerd log ---\n{}",
                self.containerd.log()
            );
            assert!(
                Instant::now() < deadline,
                "containerd's CRI plugin did not answer Version within {READY_TIMEOUT:?} \
                 (last: {last})\n--- containerd log ---\n{}",
                self.containerd.log()
            );
            std::thread::sleep(POLL);
        }
        loop {
            let status = self.call("Status", self.runtime().status(StatusRequest::default()));
            let ready = status
                .status
                .as_ref()
                .map(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.r#type == "RuntimeReady" && c.status)
                })
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the CRI runtime is not ready within {READY_TIMEOUT:?}: {status:?}\n{}",
                self.containerd.log()
            );
            std::thread::sleep(POLL);
        }
        for image in [IMAGE, SANDBOX_IMAGE] {
            loop {
                let status = self.call(
                    "ImageStatus",
                    self.images().image_status(ImageStatusRequest {
                        image: Some(image_spec(image)),
                        verbose: false,
                    }),
                );
                if status.image.is_some() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the CRI plugin does not list {image} within {READY_TIMEOUT:?}\n{}",
                    self.containerd.log()
                );
                std::thread::sleep(POLL);
            }
        }
    }

    /// `RunPodSandbox` of pod `namespace/name` with `annotations`, as the kubelet sends it
    /// for a `hostNetwork: true` pod: its own pid namespace per container, a cgroup parent
    /// per pod, a log directory `NAMESPACE_NAME_UID` (made by the kubelet, so here too).
    fn run_pod(&mut self, namespace: &str, name: &str, annotations: &[(&str, &str)]) -> Pod {
        let uid = format!("{}-{namespace}-{name}", std::process::id());
        let log_directory = self
            .containerd
            .dir()
            .join("pods")
            .join(format!("{namespace}_{name}_{uid}"));
        fs::create_dir_all(&log_directory).expect("create the pod's log directory");
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_owned(),
                uid: uid.clone(),
                namespace: namespace.to_owned(),
                attempt: 0,
            }),
            log_directory: log_directory.display().to_string(),
            labels: HashMap::from([
                ("io.kubernetes.pod.name".to_owned(), name.to_owned()),
                (
                    "io.kubernetes.pod.namespace".to_owned(),
                    namespace.to_owned(),
                ),
                ("io.kubernetes.pod.uid".to_owned(), uid.clone()),
            ]),
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: format!("{}/pod{uid}", self.cgroup_parent),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let response = self.call(
            &format!("RunPodSandbox {namespace}/{name}"),
            self.runtime().run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: HANDLER.to_owned(),
            }),
        );
        self.pods.push(response.pod_sandbox_id.clone());
        Pod {
            id: response.pod_sandbox_id,
            config,
        }
    }

    /// `CreateContainer` + `StartContainer` of container `name` running `sh -c script` in
    /// `pod`, with the runtime's default seccomp profile (what the pod security
    /// standards' restricted level asks for) and containerd's default capabilities.
    fn start_container(&self, pod: &Pod, name: &str, script: &str) -> String {
        fs::create_dir_all(Path::new(&pod.config.log_directory).join(name))
            .expect("create the container's log directory");
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.to_owned(),
                attempt: 0,
            }),
            image: Some(image_spec(IMAGE)),
            command: vec!["sh".to_owned()],
            args: vec!["-c".to_owned(), script.to_owned()],
            log_path: format!("{name}/0.log"),
            labels: HashMap::from([("io.kubernetes.container.name".to_owned(), name.to_owned())]),
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(namespaces()),
                    seccomp: Some(SecurityProfile {
                        profile_type: ProfileType::RuntimeDefault as i32,
                        localhost_ref: String::new(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self.call(
            &format!("CreateContainer {name}"),
            self.runtime().create_container(CreateContainerRequest {
                pod_sandbox_id: pod.id.clone(),
                config: Some(config),
                sandbox_config: Some(pod.config.clone()),
            }),
        );
        self.call(
            &format!("StartContainer {name}"),
            self.runtime().start_container(StartContainerRequest {
                container_id: created.container_id.clone(),
            }),
        );
        created.container_id
    }

    /// `ExecSync` of `cmd` in `container` (what `kubectl exec` without a terminal ends
    /// in), with the kubelet's timeout in seconds.
    fn exec_sync(&self, container: &str, cmd: &[&str]) -> Result<ExecSyncResponse, String> {
        self.try_call(
            CRI_TIMEOUT,
            self.runtime().exec_sync(ExecSyncRequest {
                container_id: container.to_owned(),
                cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
                timeout: 30,
            }),
        )
    }

    /// Waits (bounded) until the log of container `name` in `pod` contains `needle`, and
    /// returns the log.
    fn wait_log(&self, pod: &Pod, name: &str, needle: &str) -> String {
        let path = pod.log_path(name);
        let deadline = Instant::now() + LOG_TIMEOUT;
        loop {
            let log = fs::read_to_string(&path).unwrap_or_default();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in {} within {LOG_TIMEOUT:?}:\n{log}\n--- containerd log ---\n{}",
                path.display(),
                self.containerd.log()
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Node {
    /// Stops and removes each pod as the kubelet does when a pod is deleted (bounded,
    /// errors reported and otherwise ignored: the containerd guard kills what is left).
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.pods) {
            let stop = self.try_call(
                CLEANUP_TIMEOUT,
                self.runtime().stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                }),
            );
            let remove = self.try_call(
                CLEANUP_TIMEOUT,
                self.runtime().remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                }),
            );
            if let Err(e) = stop.and(remove) {
                eprintln!("sniffguard-tests: removing pod sandbox {id}: {e}");
            }
        }
    }
}

/// A `hostNetwork: true` pod's namespaces: the node's network, a pid namespace per
/// container (no `shareProcessNamespace`), the pod's IPC namespace.
fn namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn image_spec(image: &str) -> ImageSpec {
    ImageSpec {
        image: image.to_owned(),
        ..Default::default()
    }
}

/// A namespace name unique to this test process, starting with `prefix`.
fn namespace(prefix: &str) -> String {
    format!("{prefix}sgcri-{}", std::process::id())
}

fn is_tcpdump(alert: &Value) -> bool {
    str_at(alert, "/process/exe") == Some("/usr/bin/tcpdump")
}

/// Asserts what an alert says about the pod and how its environment was chosen.
fn assert_pod(alert: &Value, namespace: &str, pod: &str, environment: &str, chosen_by: &str) {
    assert_eq!(
        str_at(alert, "/container/namespace"),
        Some(namespace),
        "{alert}"
    );
    assert_eq!(str_at(alert, "/container/pod"), Some(pod), "{alert}");
    assert_eq!(str_at(alert, "/container/name"), Some("shell"), "{alert}");
    assert_eq!(str_at(alert, "/environment"), Some(environment), "{alert}");
    assert_eq!(
        alert.pointer("/container/registered"),
        Some(&json!(true)),
        "{alert}"
    );
    let said = str_at(alert, "/container/environment_chosen_by").unwrap_or_default();
    assert!(
        said.starts_with(chosen_by),
        "chosen by {chosen_by:?}? {alert}"
    );
}

/// The pause container went through the shim like every container of the pod: it is
/// attached in the pod's `environment`, and made no noise (no alert about it, no log line
/// at ERROR, none at WARN that names it).
fn assert_sandbox_quiet(sup: &Supervisor, pod: &Pod, environment: &str) {
    let (record, status) = sup.container_status(&pod.id);
    assert!(
        !record.is_null(),
        "sandbox {} not attached: {status}",
        pod.id
    );
    assert_eq!(record["environment"], environment, "{record}");
    let settled = sup.alerts_settled(Duration::from_millis(500), ALERT_TIMEOUT);
    let about_pause: Vec<&Value> = settled
        .iter()
        .filter(|a| is_alert_for(a, &pod.id))
        .collect();
    assert!(
        about_pause.is_empty(),
        "alerts about the sandbox: {about_pause:?}"
    );
    let noise = errors_and_warnings_about(sup, &pod.id);
    assert!(
        noise.is_empty(),
        "supervisor log at ERROR, or at WARN about the sandbox: {noise:#?}"
    );
}

/// The supervisor's log lines at level ERROR, and those at WARN that name `id`.
fn errors_and_warnings_about(sup: &Supervisor, id: &str) -> Vec<String> {
    strip_ansi(&sup.stderr_log())
        .lines()
        .filter(|line| match line.split_whitespace().nth(1) {
            Some("ERROR") => true,
            Some("WARN") => line.contains(id),
            _ => false,
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn cri_staging_pod_refuses_tcpdump_in_its_container_and_in_exec_sync() {
    if !require_root() {
        return;
    }
    staging_pod(Runtime::Runc);
}

/// The same pod with crun behind the shim: containerd's runc v2 shim drives crun through
/// the wrapper (create, start, exec, kill, delete).
#[test]
fn cri_staging_pod_under_crun() {
    if !require_root() {
        return;
    }
    staging_pod(Runtime::Crun);
}

/// A pod in a `stg-` namespace with `runtime` behind the shim: tcpdump is refused in its
/// container and in an `ExecSync`, anything else runs, and the pause container is
/// attached without an alert or an error.
fn staging_pod(runtime: Runtime) {
    let sup = Supervisor::start(Some(&policy()));
    let mut node = Node::start_with_runtime(&sup, runtime.name(), runtime);
    let ns = namespace("stg-");
    let pod = node.run_pod(&ns, "sniff-test", &[]);
    let id = node.start_container(&pod, "shell", TCPDUMP_ONCE);

    // In the container: refused before it runs (busybox sh: 126, EPERM's message).
    let log = node.wait_log(&pod, "shell", "tcpdump_rc=");
    assert!(log.contains("tcpdump_rc=126"), "{log}\n{}", sup.report());
    assert!(log.contains("Operation not permitted"), "{log}");
    let alert = wait_alert(&sup, &id, "denied tcpdump", |a| {
        is_tcpdump(a) && str_at(a, "/action") == Some("denied")
    });
    assert_pod(&alert, &ns, "sniff-test", "staging", STG_RULE);
    assert_eq!(str_at(&alert, "/mode"), Some("enforce"), "{alert}");
    assert_eq!(str_at(&alert, "/mechanism"), Some("seccomp"), "{alert}");
    // The runtime's file name: crun is run through scripts/crun-hybrid here.
    let used = str_at(&alert, "/container/runtime").unwrap_or_default();
    assert!(used.starts_with(runtime.name()), "{alert}");

    // kubectl exec: the exec'd process is under the same filter.
    // The runtime's own execve in `exec` is refused: exit 1 and the errno on the exec's
    // stderr (runc: "exec /usr/bin/tcpdump: operation not permitted", crun: "exec:
    // Operation not permitted").
    let refused = node
        .exec_sync(&id, &["tcpdump", "-D"])
        .expect("ExecSync tcpdump");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_ne!(refused.exit_code, 0, "tcpdump ran in an ExecSync: {stderr}");
    assert!(
        stderr.to_lowercase().contains("operation not permitted"),
        "ExecSync of tcpdump failed otherwise ({}): {stderr}",
        refused.exit_code
    );
    let first = alert.pointer("/process/pid").cloned();
    wait_alert(&sup, &id, "denied ExecSync tcpdump", |a| {
        is_tcpdump(a)
            && str_at(a, "/action") == Some("denied")
            && a.pointer("/process/pid").cloned() != first
    });
    // Anything else still runs through ExecSync.
    let ls = node.exec_sync(&id, &["ls", "/"]).expect("ExecSync ls");
    assert_eq!(ls.exit_code, 0, "{ls:?}");

    assert_sandbox_quiet(&sup, &pod, "staging");
}

#[test]
fn cri_ci_pod_runs_tcpdump_and_is_alerted() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(Some(&policy()));
    let mut node = Node::start(&sup, "ci");
    let ns = namespace("ci-");
    let pod = node.run_pod(&ns, "sniff-test", &[]);
    let id = node.start_container(&pod, "shell", TCPDUMP_ONCE);

    let log = node.wait_log(&pod, "shell", "tcpdump_rc=");
    assert!(log.contains("tcpdump_rc=0"), "{log}\n{}", sup.report());
    let alert = wait_alert(&sup, &id, "allowed tcpdump", is_tcpdump);
    assert_eq!(str_at(&alert, "/action"), Some("allowed"), "{alert}");
    assert_eq!(str_at(&alert, "/mode"), Some("audit"), "{alert}");
    assert_pod(&alert, &ns, "sniff-test", "ci", CI_RULE);

    let exec = node
        .exec_sync(&id, &["tcpdump", "-D"])
        .expect("ExecSync tcpdump");
    assert_eq!(exec.exit_code, 0, "{exec:?}");
    let first = alert.pointer("/process/pid").cloned();
    wait_alert(&sup, &id, "ExecSync tcpdump", |a| {
        is_tcpdump(a) && a.pointer("/process/pid").cloned() != first
    });
    assert_sandbox_quiet(&sup, &pod, "ci");
}

/// A pod's `sniffguard.io/environment` annotation reaches its containers (the snippet's
/// `pod_annotations`) and only tightens: `ci` asked in a staging namespace is ignored and
/// said so, `staging` asked in a ci namespace is granted.
#[test]
fn cri_pod_annotation_only_tightens() {
    if !require_root() {
        return;
    }
    let sup = Supervisor::start(Some(&policy()));
    let mut node = Node::start(&sup, "annotation");

    let stg = namespace("stg-");
    let looser = node.run_pod(&stg, "asks-ci", &[(ENVIRONMENT_ANNOTATION, "ci")]);
    let looser_id = node.start_container(&looser, "shell", TCPDUMP_ONCE);
    let ci = namespace("ci-");
    let stricter = node.run_pod(&ci, "asks-staging", &[(ENVIRONMENT_ANNOTATION, "staging")]);
    let stricter_id = node.start_container(&stricter, "shell", TCPDUMP_ONCE);

    for (pod, id, ns, name, chosen_by) in [
        (
            &looser,
            &looser_id,
            &stg,
            "asks-ci",
            format!("{STG_RULE}; the annotation's \"ci\" was ignored"),
        ),
        (
            &stricter,
            &stricter_id,
            &ci,
            "asks-staging",
            format!("annotation, stricter than \"ci\" from {CI_RULE}"),
        ),
    ] {
        let log = node.wait_log(pod, "shell", "tcpdump_rc=");
        assert!(
            log.contains("tcpdump_rc=126"),
            "{name}: {log}\n{}",
            sup.report()
        );
        let alert = wait_alert(&sup, id, "denied tcpdump", |a| {
            is_tcpdump(a) && str_at(a, "/action") == Some("denied")
        });
        assert_pod(&alert, ns, name, "staging", &chosen_by);
    }
}
