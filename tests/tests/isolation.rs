//! Containers never share a cgroup (issue 13 item 1, CG-1).
//!
//! - The same id in many containerd namespaces, created at the same time, round after round:
//!   every container runs, each in a cgroup of its own (`/docker/<ns>--<id>`) that holds only its
//!   own processes, and pausing one freezes only that one.
//! - The namespace `default` keeps Docker's exact `/docker/<id>`.
//! - Creates racing for one cgroup (the same client-given path from several namespaces): exactly
//!   one wins, the others fail with an error naming the path and the holder; the claim is
//!   released with the container, so the path can be used again.
//!
//! Our shim only: the Go shim puts the same id of two namespaces into two cgroups of
//! containerd's layout (`/<ns>/<id>`), and puts every container with one client-given path
//! into that one cgroup.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dockerish_tests::{procs, unique_name, Containerd, Runtime, IMAGE};
use sha2::{Digest, Sha256};

const D: Runtime = Runtime::Dockerish;
const T: Duration = Duration::from_secs(30);
/// Where the shim keeps its host-wide claims (dockerish_host::claims::CLAIMS_DIR).
const CLAIMS: &str = "/run/containerd-shim-dockerish/claims/host";

fn rounds() -> usize {
    std::env::var("DOCKERISH_CGROUP_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5)
}

/// The claim file of a cgroupfs path (the shim's on-disk contract: sha256 of the key).
fn cgroup_claim(path: &str) -> PathBuf {
    let hex: String = Sha256::digest(path.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    Path::new(CLAIMS).join("cgroup").join(hex)
}

fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The container's cgroup as its init sees it from the host (`pids` hierarchy on v1).
fn cgroup_of(pid: i32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_else(|e| panic!("/proc/{pid}/cgroup: {e}"));
    text.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            (if v2() { ctrls.is_empty() } else { ctrls.split(',').any(|c| c == "pids") }).then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no pids cgroup in /proc/{pid}/cgroup:\n{text}"))
}

/// A file of cgroup `path` in `controller` (v1), or of the unified hierarchy (v2).
fn cgroup_file(controller: &str, path: &str, file: &str) -> PathBuf {
    let base = if v2() { PathBuf::from("/sys/fs/cgroup") } else { Path::new("/sys/fs/cgroup").join(controller) };
    base.join(path.trim_start_matches('/')).join(file)
}

fn procs_in(path: &str) -> Vec<i32> {
    let f = cgroup_file("pids", path, "cgroup.procs");
    std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display())).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn frozen(path: &str) -> bool {
    if v2() {
        std::fs::read_to_string(cgroup_file("", path, "cgroup.events")).is_ok_and(|t| t.lines().any(|l| l == "frozen 1"))
    } else {
        std::fs::read_to_string(cgroup_file("freezer", path, "freezer.state")).is_ok_and(|t| t.trim() == "FROZEN")
    }
}

/// `ctr task ls` status of `id` in `ns`.
fn status(c: &Containerd, ns: &str, id: &str) -> Option<String> {
    c.ctr_in(ns, &["task", "ls"]).stdout.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 3 && f[0] == id).then(|| f[2].to_string())
    })
}

fn task_pid(c: &Containerd, ns: &str, id: &str) -> i32 {
    c.ctr_in(ns, &["task", "ls"])
        .stdout
        .lines()
        .skip(1)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[0] == id).then(|| f[1].parse().unwrap_or(0))
        })
        .unwrap_or_else(|| panic!("task {ns}/{id} not listed"))
}

fn remove_in(c: &Containerd, ns: &str, id: &str) {
    let _ = c.ctr_in(ns, &["task", "kill", "-s", "SIGKILL", id]);
    dockerish_tests::wait_until(T, || !matches!(status(c, ns, id).as_deref(), Some("RUNNING") | Some("PAUSED") | Some("CREATED")));
    let _ = c.ctr_in(ns, &["task", "rm", "-f", id]);
    let _ = c.ctr_in(ns, &["container", "rm", id]);
}

/// `ctr run -d` of `id` in every namespace of `nss` at the same time (one thread each);
/// returns each one's outcome (stderr on failure).
fn run_at_once(c: &Containerd, nss: &[String], id: &str, extra: &[&str]) -> Vec<Result<(), String>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = nss
            .iter()
            .map(|ns| {
                s.spawn(move || {
                    let mut args = vec!["run", "-d", "--runtime", D.name()];
                    args.extend_from_slice(extra);
                    args.extend([IMAGE, id, "sleep", "100000"]);
                    let o = c.ctr_in(ns, &args);
                    if o.ok() {
                        Ok(())
                    } else {
                        Err(format!("{}{}", o.stderr, o.stdout))
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into()))).collect()
    })
}

/// Six namespaces create the same id at once, for several rounds: every container runs, each in
/// its own `/docker/<ns>--<id>` holding only its own processes, and pausing one freezes only it.
#[test]
fn the_same_id_in_six_namespaces_gets_six_cgroups() {
    let c = Containerd::start();
    let nss: Vec<String> = (0..6).map(|_| c.new_namespace()).collect();
    for round in 0..rounds() {
        let id = unique_name("same");
        for ns in &nss {
            c.track(ns, &id);
        }
        let outcomes = run_at_once(&c, &nss, &id, &[]);
        let failed: Vec<String> = nss.iter().zip(&outcomes).filter_map(|(ns, o)| o.as_ref().err().map(|e| format!("{ns}: {e}"))).collect();
        assert!(failed.is_empty(), "round {round}: not every namespace could run {id}:\n{}", failed.join("\n"));
        let mut seen = Vec::new();
        for ns in &nss {
            let pid = task_pid(&c, ns, &id);
            let cg = cgroup_of(pid);
            assert_eq!(cg, format!("/docker/{ns}--{id}"), "round {round}: cgroup of {ns}/{id}");
            assert_eq!(procs_in(&cg), vec![pid], "round {round}: {cg} holds another container's processes");
            assert!(cgroup_claim(&cg).is_file(), "round {round}: no claim for {cg}");
            seen.push((ns.clone(), cg));
        }
        // Pause one: only its cgroup freezes; the others keep running and answer an exec.
        let (ns0, cg0) = &seen[0];
        c.ctr_in(ns0, &["task", "pause", &id]).expect_ok();
        assert!(dockerish_tests::wait_until(T, || frozen(cg0)), "round {round}: {cg0} not frozen after pause");
        for (ns, cg) in &seen[1..] {
            assert!(!frozen(cg), "round {round}: pausing {ns0}/{id} froze {cg}");
            assert_eq!(status(&c, ns, &id).as_deref(), Some("RUNNING"), "round {round}: {ns}/{id}");
            c.ctr_in(ns, &["task", "exec", "--exec-id", "alive", &id, "true"]).expect_ok();
        }
        c.ctr_in(ns0, &["task", "resume", &id]).expect_ok();
        for (ns, cg) in &seen {
            remove_in(&c, ns, &id);
            assert!(dockerish_tests::wait_until(T, || !cgroup_claim(cg).exists()), "round {round}: claim of {cg} left after removal");
            assert!(!cgroup_file("pids", cg, "").exists(), "round {round}: {cg} left after removal");
        }
    }
}

/// The namespace `default` keeps Docker's exact `/docker/<id>`.
#[test]
fn the_default_namespace_keeps_dockers_cgroup_name() {
    let c = Containerd::start();
    let ns = "default";
    c.import_image(ns);
    let id = unique_name("dflt");
    c.track(ns, &id);
    c.ctr_in(ns, &["run", "-d", "--runtime", D.name(), IMAGE, &id, "sleep", "100000"]).expect_ok();
    let pid = task_pid(&c, ns, &id);
    assert_eq!(cgroup_of(pid), format!("/docker/{id}"));
    remove_in(&c, ns, &id);
    assert!(procs::cgroups_named(&id).is_empty(), "cgroup left: {:?}", procs::cgroups_named(&id));
    assert!(!cgroup_claim(&format!("/docker/{id}")).exists(), "claim left");
}

/// Creates racing for one cgroup: four namespaces ask for the same client-given path at once.
/// Exactly one runs; the others fail naming the path and the holder, and leave nothing; after
/// the winner is removed the path is free again.
#[test]
fn racing_creates_for_one_cgroup_exactly_one_wins() {
    // Dropped after `c`: the containers are gone by then, so their cgroups can be removed.
    let top = unique_name("dkt-claim");
    let _cleanup = CgroupTree(top.clone());
    let c = Containerd::start();
    let nss: Vec<String> = (0..4).map(|_| c.new_namespace()).collect();
    let path = format!("/{top}/shared");
    for round in 0..rounds() {
        let id = unique_name("race");
        for ns in &nss {
            c.track(ns, &id);
        }
        let outcomes = run_at_once(&c, &nss, &id, &["--cgroup", &path]);
        let winners: Vec<&String> = nss.iter().zip(&outcomes).filter(|(_, o)| o.is_ok()).map(|(ns, _)| ns).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one create may win {path}: {outcomes:?}");
        let winner = winners[0];
        for (ns, o) in nss.iter().zip(&outcomes) {
            if let Err(e) = o {
                let want = format!("cgroup \"{path}\" is already in use by container \"{id}\" of namespace \"{winner}\"");
                assert!(e.contains(&want), "round {round}: {ns}: {e}");
                let _ = c.ctr_in(ns, &["container", "rm", &id]);
                let b = c.bundle(ns, &id);
                assert!(dockerish_tests::wait_until(T, || !b.exists()), "round {round}: {ns}: bundle left");
            }
        }
        let pid = task_pid(&c, winner, &id);
        assert_eq!(cgroup_of(pid), path);
        assert_eq!(procs_in(&path), vec![pid]);
        remove_in(&c, winner, &id);
        assert!(dockerish_tests::wait_until(T, || !cgroup_claim(&path).exists()), "round {round}: claim left after removal");
    }
    // Released: the next create gets it.
    let id = unique_name("after");
    c.track(&nss[1], &id);
    c.ctr_in(&nss[1], &["run", "-d", "--runtime", D.name(), "--cgroup", &path, IMAGE, &id, "sleep", "100000"]).expect_ok();
    remove_in(&c, &nss[1], &id);
}

/// The claim is a host action of the bundle: when the shim is SIGKILLed, containerd's `shim
/// delete` releases it with the rest, and the same cgroup can be taken again.
#[test]
fn the_cgroup_claim_is_released_by_shim_delete_after_a_crash() {
    let c = Containerd::start();
    let id = c.id("cgcrash");
    c.run_sleeper(D, id);
    let cg = format!("/docker/{}--{id}", c.ns);
    assert_eq!(cgroup_of(task_pid(&c, &c.ns, id)), cg);
    let claim = cgroup_claim(&cg);
    assert!(claim.is_file(), "claim {} while the container runs", claim.display());
    procs::kill(c.shim_pid(id).expect("shim"), libc::SIGKILL);
    assert!(dockerish_tests::wait_until(T, || !claim.exists()), "claim {} left after shim delete", claim.display());
    let _ = c.ctr(&["task", "rm", "-f", id]);
    let _ = c.ctr(&["container", "rm", id]);
    c.assert_no_leftovers(id);
    c.run_sleeper(D, id);
    assert_eq!(cgroup_of(task_pid(&c, &c.ns, id)), cg, "the same cgroup, free again");
    c.remove(id);
    c.assert_no_leftovers(id);
    assert!(!claim.exists());
}

/// Removes a client-chosen cgroup tree (`/<top>/…`) from every hierarchy.
struct CgroupTree(String);

impl Drop for CgroupTree {
    fn drop(&mut self) {
        let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            roots.extend(rd.flatten().map(|e| e.path()));
        }
        for r in roots {
            let top = r.join(&self.0);
            let _ = std::fs::remove_dir(top.join("shared"));
            let _ = std::fs::remove_dir(top);
        }
    }
}
