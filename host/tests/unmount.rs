//! The one unmount loop (`unmount_all`) and the cgroup-v2 probe, shared with the shim.

use std::path::Path;

fn mounted(p: &Path) -> usize {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines().filter(|l| l.split(' ').nth(4) == Some(p.to_str().unwrap())).count()
}

#[test]
fn unmount_all_removes_stacked_mounts_and_accepts_nothing_mounted() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to mount");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("t");
    std::fs::create_dir(&t).unwrap();
    for _ in 0..3 {
        nix::mount::mount(Some("tmpfs"), &t, Some("tmpfs"), nix::mount::MsFlags::empty(), None::<&str>).unwrap();
    }
    assert_eq!(mounted(&t), 3);
    dockerish_host::unmount_all(&t, false).unwrap();
    assert_eq!(mounted(&t), 0);
    dockerish_host::unmount_all(&t, true).unwrap();
    dockerish_host::unmount_all(&d.path().join("absent"), false).unwrap();
}

#[test]
fn cgroup_v2_probe_matches_the_mount_table() {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v2 = text.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        f.get(4) == Some(&"/sys/fs/cgroup") && l.split(" - ").nth(1).is_some_and(|r| r.starts_with("cgroup2 "))
    });
    assert_eq!(dockerish_host::cgroup_v2(), v2);
}
