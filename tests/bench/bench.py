#!/usr/bin/env python3
"""Side-by-side benchmark of io.containerd.runc.v2 (Debian's Go shim) and io.containerd.dockerish.v2.

Started by tests/bench/run (which builds the binaries first). Every measurement alternates the two
runtimes (ABAB…, order swapped each round) on one private containerd, and prints medians and
ratios (dockerish / Go shim). See tests/bench/RESULTS.md for the method and the latest numbers.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GO = "io.containerd.runc.v2"
DK = "io.containerd.dockerish.v2"
RUNTIMES = [GO, DK]
GOSEC = "runc.v2+seccomp"
# dockerish with Docker's seccomp profile switched off: the same runc work as the plain Go shim,
# so the ratio against GO is the shim's own share of the difference.
DKU = "dockerish+unconfined"
UNCONFINED = ["--annotation", "io.containerd.dockerish/security-opt=seccomp=unconfined"]
VARIANTS = {GOSEC: (GO, ["--seccomp"]), DKU: (DK, UNCONFINED)}
SHORT = {GO: "runc.v2 (Go)", DK: "dockerish"}
SHIM_BIN = {GO: "containerd-shim-runc-v2", DK: "containerd-shim-dockerish-v2"}
CG_NAME = {GO: "shim-go", DK: "shim-dk"}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(cmd, check=True, timeout=120, env=None, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, env=env, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[:2000]}")
    return r


def med(v):
    return statistics.median(v) if v else float("nan")


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="dkb-", dir="/tmp")
        self.wrap = os.path.join(self.work, "w")
        self.env_dir = os.path.join(self.work, "env")
        self.cg_root = f"/sys/fs/cgroup/cpuacct/dkbench-{os.getpid()}"
        self.env = None
        self.seq = 0
        self.results = {}
        self.real_runc = shutil.which("runc")
        self.real_go = shutil.which("containerd-shim-runc-v2")
        self.dk_bin = args.shim

    # ---------------------------------------------------------------- setup / teardown
    def setup(self):
        os.makedirs(self.wrap)
        shutil.copy(self.args.wrapper, os.path.join(self.wrap, "dkbench-wrap"))
        conf = []
        os.makedirs(self.cg_root)
        for name, real, cg in [
            ("containerd-shim-runc-v2", self.real_go, CG_NAME[GO]),
            ("containerd-shim-dockerish-v2", self.dk_bin, CG_NAME[DK]),
            ("runc", self.real_runc, "runc"),
        ]:
            os.symlink("dkbench-wrap", os.path.join(self.wrap, name))
            os.makedirs(os.path.join(self.cg_root, cg))
            conf.append(f"{name} {real} {self.cg_root}/{cg}\n")
        with open(os.path.join(self.wrap, "wrap.conf"), "w") as f:
            f.writelines(conf)
        env = dict(os.environ, DOCKERISH_SHIM=os.path.join(self.wrap, "containerd-shim-dockerish-v2"))
        r = sh([self.args.testenv, "up", self.env_dir], env=env, timeout=180)
        self.env = dict(os.environ)
        for line in r.stdout.splitlines():
            m = re.match(r"export (\w+)=(.*)", line)
            if m:
                self.env[m.group(1)] = m.group(2)
        self.ns = self.env["CONTAINERD_NAMESPACE"]
        self.image = self.env["DOCKERISH_IMAGE"]
        self.addr = self.env["CONTAINERD_ADDRESS"]

    def teardown(self):
        if self.env is not None:
            self.remove_all()
            sh([self.args.testenv, "down", self.env_dir], check=False, timeout=180)
        for cg in [CG_NAME[GO], CG_NAME[DK], "runc"]:
            p = os.path.join(self.cg_root, cg)
            for _ in range(50):
                try:
                    os.rmdir(p)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
        try:
            os.rmdir(self.cg_root)
        except OSError as e:
            log(f"warning: cannot remove {self.cg_root}: {e}")
        shutil.rmtree(self.work, ignore_errors=True)

    # ---------------------------------------------------------------- helpers
    def ctr(self, *a, check=True, timeout=120):
        return sh(["ctr", *a], check=check, timeout=timeout, env=self.env)

    def new_id(self, tag):
        self.seq += 1
        return f"b{tag}{self.seq}"

    def cpu_ns(self, cg):
        with open(os.path.join(self.cg_root, cg, "cpuacct.usage")) as f:
            return int(f.read())

    def shim_pids(self, runtime=None, cid=None):
        """PIDs of shim daemons of our namespace (optionally of one runtime / container)."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if not argv or b"containerd-shim-" not in argv[0]:
                continue
            a = [x.decode(errors="replace") for x in argv]
            if "-namespace" not in a or a[a.index("-namespace") + 1] != self.ns:
                continue
            if "start" in a or "delete" in a:
                continue
            if runtime and SHIM_BIN[runtime] not in a[0]:
                continue
            if cid and ("-id" not in a or a[a.index("-id") + 1] != cid):
                continue
            out.append(int(d))
        return out

    def wait_shim_gone(self, cid, timeout=5.0):
        end = time.time() + timeout
        while time.time() < end:
            if not self.shim_pids(cid=cid):
                return True
            time.sleep(0.01)
        return False

    @staticmethod
    def mem(pid):
        r = {}
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Rss", "Pss", "Pss_Anon", "Pss_File"):
                    r[k] = int(v.split()[0])
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    r["Threads"] = int(line.split()[1])
        return r

    def run_detached(self, runtime, cid):
        self.ctr("run", "-d", "--runtime", runtime, self.image, cid, "sleep", "1000000")

    def remove(self, cid):
        try:
            self._remove(cid)
        except subprocess.TimeoutExpired as e:
            log(f"warning: removing {cid}: {e}")

    def _remove(self, cid):
        self.ctr("task", "kill", "-s", "SIGKILL", cid, check=False, timeout=30)
        for _ in range(100):
            r = self.ctr("task", "ls", check=False)
            if not any(l.split()[:1] == [cid] and "RUNNING" in l for l in r.stdout.splitlines()):
                break
            time.sleep(0.05)
        # Killed and waited for above, so a plain `task rm` suffices (no -f, which kills again).
        self.ctr("task", "rm", cid, check=False, timeout=20)
        self.ctr("container", "rm", cid, check=False, timeout=60)

    def remove_all(self):
        r = self.ctr("container", "ls", "-q", check=False)
        ids = [l.strip() for l in r.stdout.splitlines() if l.strip()]
        if ids:
            with ThreadPoolExecutor(8) as ex:
                list(ex.map(self.remove, ids))

    def order3(self, i):
        v = [GO, DK, GOSEC, DKU]
        return v[i % 4:] + v[:i % 4]

    def order(self, i):
        return RUNTIMES if i % 2 == 0 else RUNTIMES[::-1]

    # ---------------------------------------------------------------- measurements
    def lifecycle(self):
        n = self.args.lifecycles
        log(f"[lifecycle] ctr run --rm IMAGE ID sh -c :   x{n} per runtime (+2 warm-up), alternating")
        wall = {rt: [] for rt in RUNTIMES}
        cpu = {rt: [] for rt in RUNTIMES}
        runc_cpu = {rt: [] for rt in RUNTIMES}
        hangs = {rt: 0 for rt in RUNTIMES}
        # GOSEC: the Go shim with `ctr run --seccomp` (containerd's default profile), so that runc
        # installs a seccomp filter as it does for dockerish (Docker's default profile): same runc work.
        for k in (wall, cpu, runc_cpu, hangs):
            for v in VARIANTS:
                k[v] = [] if k is not hangs else 0
        for i in range(n + 2):
            for rt in self.order3(i):
                cid = self.new_id("l")
                rt_name, flags = VARIANTS.get(rt, (rt, []))
                c0, r0 = self.cpu_ns(CG_NAME[rt_name]), self.cpu_ns("runc")
                t0 = time.perf_counter()
                try:
                    self.ctr("run", "--rm", "--runtime", rt_name, *flags, self.image, cid, "sh", "-c", ":", timeout=20)
                except subprocess.TimeoutExpired:
                    log(f"  {SHORT[rt]}: ctr run --rm {cid} hung (> 20 s): counted as a failure, removed")
                    hangs[rt] += 1
                    self.remove(cid)
                    continue
                t1 = time.perf_counter()
                if not self.wait_shim_gone(cid):
                    raise RuntimeError(f"shim of {cid} still running 5 s after ctr run --rm")
                time.sleep(0.02)
                c1, r1 = self.cpu_ns(CG_NAME[rt_name]), self.cpu_ns("runc")
                if i >= 2:
                    wall[rt].append((t1 - t0) * 1e3)
                    cpu[rt].append((c1 - c0) / 1e6)
                    runc_cpu[rt].append((r1 - r0) / 1e6)
        self.results["lifecycle"] = {
            rt: {"wall_ms": med(wall[rt]), "shim_cpu_ms": med(cpu[rt]), "shim_cpu_mean_ms": statistics.mean(cpu[rt]), "runc_cpu_ms": med(runc_cpu[rt]), "hangs": hangs[rt]}
            for rt in RUNTIMES + list(VARIANTS)
        }

    def runc_floor(self):
        n = self.args.lifecycles
        log(f"[floor] bare runc run of a busybox bundle, sh -c :   x{n}")
        b = os.path.join(self.work, "bundle")
        rootfs = os.path.join(b, "rootfs")
        os.makedirs(os.path.join(rootfs, "bin"))
        for d in ["proc", "dev", "sys", "tmp", "etc"]:
            os.makedirs(os.path.join(rootfs, d))
        shutil.copy(shutil.which("busybox"), os.path.join(rootfs, "bin", "busybox"))
        os.symlink("busybox", os.path.join(rootfs, "bin", "sh"))
        sh([self.real_runc, "spec"], cwd=b)
        with open(os.path.join(b, "config.json")) as f:
            cfg = json.load(f)
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["sh", "-c", ":"]
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)
        root = os.path.join(self.work, "runc-root")
        walls = []
        for i in range(n + 2):
            t0 = time.perf_counter()
            sh([self.real_runc, "--root", root, "run", "--bundle", b, f"floor{i}"])
            t1 = time.perf_counter()
            if i >= 2:
                walls.append((t1 - t0) * 1e3)
        self.results["runc_run_floor_ms"] = med(walls)

    def exec_latency(self):
        n = self.args.execs
        log(f"[exec] ctr task exec ID true   x{n} per runtime (+3 warm-up), alternating")
        ids = {}
        for rt in RUNTIMES:
            ids[rt] = self.new_id("e")
            self.run_detached(rt, ids[rt])
        for v, (rt_name, flags) in VARIANTS.items():
            ids[v] = self.new_id("e")
            self.ctr("run", "-d", *flags, "--runtime", rt_name, self.image, ids[v], "sleep", "1000000")
        lat = {rt: [] for rt in RUNTIMES + list(VARIANTS)}
        for i in range(n + 3):
            for rt in self.order3(i):
                t0 = time.perf_counter()
                self.ctr("task", "exec", "--exec-id", f"x{i}", ids[rt], "true")
                t1 = time.perf_counter()
                if i >= 3:
                    lat[rt].append((t1 - t0) * 1e3)
        for rt in ids:
            self.remove(ids[rt])
        self.results["exec"] = {rt: {"wall_ms": med(lat[rt])} for rt in RUNTIMES + list(VARIANTS)}

    def create_latency(self):
        n = self.args.creates
        log(f"[create] ctr task start -d of a created container (shim start + Create + Start RPCs)   x{n} per runtime")
        lat = {rt: [] for rt in RUNTIMES}
        for i in range(n + 2):
            for rt in self.order(i):
                cid = self.new_id("c")
                self.ctr("container", "create", "--runtime", rt, self.image, cid, "sleep", "1000000")
                t0 = time.perf_counter()
                self.ctr("task", "start", "-d", "--null-io", cid)
                t1 = time.perf_counter()
                self.remove(cid)
                if i >= 2:
                    lat[rt].append((t1 - t0) * 1e3)
        self.results["create"] = {rt: {"wall_ms": med(lat[rt])} for rt in RUNTIMES}

    def start_many(self, rt, count):
        ids = [self.new_id("m") for _ in range(count)]
        with ThreadPoolExecutor(self.args.parallel) as ex:
            list(ex.map(lambda c: self.run_detached(rt, c), ids))
        return ids

    def settle_and_measure(self, rt, count):
        time.sleep(self.args.settle)
        pids = self.shim_pids(runtime=rt)
        if len(pids) != count:
            raise RuntimeError(f"{SHORT[rt]}: expected {count} shim daemons, found {len(pids)}")
        ms = [self.mem(p) for p in pids]
        return {
            "pss_kib": sum(m["Pss"] for m in ms),
            "rss_kib": sum(m["Rss"] for m in ms),
            "pss_anon_kib": sum(m["Pss_Anon"] for m in ms),
            "threads": sum(m["Threads"] for m in ms),
        }

    def memory(self):
        """One runtime at a time (only its shims running), so that shared pages are shared the
        same way: 1 container, then 20 (marginal Pss), then the scale test."""
        rounds = self.args.mem_rounds
        log(f"[memory] idle shim with 1 running container, {rounds} round(s) per runtime; then 20 containers")
        one = {rt: [] for rt in RUNTIMES}
        for i in range(rounds):
            for rt in self.order(i):
                ids = self.start_many(rt, 1)
                one[rt].append(self.settle_and_measure(rt, 1))
                for c in ids:
                    self.remove(c)
        twenty = {}
        for rt in RUNTIMES:
            ids = self.start_many(rt, 20)
            twenty[rt] = self.settle_and_measure(rt, 20)
            with ThreadPoolExecutor(8) as ex:
                list(ex.map(self.remove, ids))
        res = {}
        for rt in RUNTIMES:
            o = {k: med([m[k] for m in one[rt]]) for k in one[rt][0]}
            res[rt] = {
                "one": o,
                "twenty_total_pss_kib": twenty[rt]["pss_kib"],
                "marginal_pss_kib": (twenty[rt]["pss_kib"] - o["pss_kib"]) / 19,
            }
        self.results["memory"] = res

    def scale(self):
        n = self.args.scale
        log(f"[scale] {n} containers running at once, one runtime at a time")
        res = {}
        for rt in RUNTIMES:
            t0 = time.perf_counter()
            ids = self.start_many(rt, n)
            t1 = time.perf_counter()
            m = self.settle_and_measure(rt, n)
            m["start_all_s"] = t1 - t0
            with ThreadPoolExecutor(8) as ex:
                list(ex.map(self.remove, ids))
            res[rt] = m
            log(f"  {SHORT[rt]}: total Pss {m['pss_kib']/1024:.1f} MiB, started in {t1-t0:.1f} s")
        self.results["scale"] = {"containers": n, **res}

    def sizes(self):
        def stripped(p):
            out = os.path.join(self.work, "stripped")
            shutil.copy(p, out)
            sh(["strip", out])
            s = os.path.getsize(out)
            os.unlink(out)
            return s

        self.results["binary"] = {
            GO: {"path": self.real_go, "bytes": os.path.getsize(self.real_go), "stripped_bytes": stripped(self.real_go)},
            DK: {"path": self.dk_bin, "bytes": os.path.getsize(self.dk_bin), "stripped_bytes": stripped(self.dk_bin)},
        }

    # ---------------------------------------------------------------- report
    def report(self):
        R = self.results
        rows = []

        def row(item, metric, go, dk, target=None, fmt="{:.1f}"):
            ratio = dk / go if go else float("nan")
            ok = "" if target is None else ("met" if ratio <= target else "MISSED")
            rows.append((item, metric, fmt.format(go), fmt.format(dk), f"{ratio:.2f}", "" if target is None else f"<= {target:.2f} {ok}"))

        if "memory" in R:
            m = R["memory"]
            g, d = m[GO]["one"], m[DK]["one"]
            row("1", "idle Pss, 1 container (MiB)", g["pss_kib"] / 1024, d["pss_kib"] / 1024, 0.30, "{:.2f}")
            row("1", "idle RSS (MiB)", g["rss_kib"] / 1024, d["rss_kib"] / 1024, None, "{:.2f}")
            row("1", "idle Pss anon (MiB)", g["pss_anon_kib"] / 1024, d["pss_anon_kib"] / 1024, None, "{:.2f}")
            row("1", "threads", g["threads"], d["threads"], None, "{:.0f}")
            row("1", "marginal Pss/container @20 (MiB)", m[GO]["marginal_pss_kib"] / 1024, m[DK]["marginal_pss_kib"] / 1024, None, "{:.2f}")
        if "lifecycle" in R:
            l = R["lifecycle"]
            row("2", "ctr run --rm wall (ms)", l[GO]["wall_ms"], l[DK]["wall_ms"], 0.92)
            row("2", "shim CPU/lifecycle (ms)", l[GO]["shim_cpu_ms"], l[DK]["shim_cpu_ms"], 0.50, "{:.2f}")
            row("2", "runc CPU/lifecycle (ms, info)", l[GO]["runc_cpu_ms"], l[DK]["runc_cpu_ms"], None, "{:.2f}")
            row("2", "hung lifecycles (count)", l[GO]["hangs"], l[DK]["hangs"], None, "{:.0f}")
            row("2s", "wall vs Go + ctr --seccomp (ms)", l[GOSEC]["wall_ms"], l[DK]["wall_ms"])
            row("2s", "shim CPU vs Go + --seccomp (ms)", l[GOSEC]["shim_cpu_ms"], l[DK]["shim_cpu_ms"], None, "{:.2f}")
            row("2s", "runc CPU vs Go + --seccomp (ms)", l[GOSEC]["runc_cpu_ms"], l[DK]["runc_cpu_ms"], None, "{:.2f}")
            row("2u", "wall, both without seccomp (ms)", l[GO]["wall_ms"], l[DKU]["wall_ms"])
            row("2u", "runc CPU, both without seccomp (ms)", l[GO]["runc_cpu_ms"], l[DKU]["runc_cpu_ms"], None, "{:.2f}")
        if "exec" in R:
            row("3", "ctr task exec wall (ms)", R["exec"][GO]["wall_ms"], R["exec"][DK]["wall_ms"], 0.95)
            row("3s", "exec vs Go + ctr --seccomp (ms)", R["exec"][GOSEC]["wall_ms"], R["exec"][DK]["wall_ms"])
            row("3u", "exec, both without seccomp (ms)", R["exec"][GO]["wall_ms"], R["exec"][DKU]["wall_ms"])
        if "create" in R:
            row("4", "task start -d (Create+Start) (ms)", R["create"][GO]["wall_ms"], R["create"][DK]["wall_ms"])
        if "scale" in R:
            s = R["scale"]
            row("5", f"total Pss, {s['containers']} containers (MiB)", s[GO]["pss_kib"] / 1024, s[DK]["pss_kib"] / 1024)
            row("5", f"threads, {s['containers']} shims", s[GO]["threads"], s[DK]["threads"], None, "{:.0f}")
        if "binary" in R:
            b = R["binary"]
            row("6", "binary size, stripped (MiB)", b[GO]["stripped_bytes"] / 2**20, b[DK]["stripped_bytes"] / 2**20, None, "{:.2f}")
        hdr = ("item", "metric (median)", "runc.v2 (Go)", "dockerish", "ratio", "target")
        w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(6)]
        lines = ["| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(hdr)) + " |", "|" + "|".join("-" * (x + 2) for x in w) + "|"]
        for r in rows:
            lines.append("| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) + " |")
        if "runc_run_floor_ms" in R:
            lines.append(f"\nfloor: bare `runc run` (busybox bundle, sh -c :) median {R['runc_run_floor_ms']:.1f} ms")
        if "spec_fill_us" in R:
            f = R["spec_fill_us"]
            ok = "met" if f < 100 else "MISSED"
            share = ""
            if "create" in R:
                share = f"; {100 * f / 1000 / R['create'][DK]['wall_ms']:.2f} % of dockerish `ctr task start -d` ({R['create'][DK]['wall_ms']:.1f} ms)"
            lines.append(f"item 4: spec fill {f:.1f} µs per Create (target < 100 µs: {ok}){share}")
        print("\n".join(lines))
        with open(self.args.json or os.devnull, "w") as f:
            json.dump(R, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--shim", required=True)
    ap.add_argument("--wrapper", required=True)
    ap.add_argument("--testenv", required=True)
    ap.add_argument("--json")
    ap.add_argument("--fill-us", type=float, help="median spec fill time from the spec bench (µs)")
    ap.add_argument("--only", help="comma list: memory,lifecycle,floor,exec,create,scale,sizes")
    a = ap.parse_args()
    a.lifecycles = 10 if a.quick else 30
    a.execs = 15 if a.quick else 50
    a.creates = 6 if a.quick else 20
    a.mem_rounds = 1 if a.quick else 3
    a.scale = 50 if a.quick else 200
    a.parallel = 4
    a.settle = 2.0
    b = Bench(a)

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    steps = ["sizes", "memory", "lifecycle", "floor", "exec", "create", "scale"]
    if a.only:
        steps = [s for s in steps if s in a.only.split(",")]
    try:
        b.setup()
        for s in steps:
            t = time.time()
            {"sizes": b.sizes, "memory": b.memory, "lifecycle": b.lifecycle, "floor": b.runc_floor, "exec": b.exec_latency, "create": b.create_latency, "scale": b.scale}[s]()
            log(f"  ({s}: {time.time() - t:.0f} s)")
        if a.fill_us:
            b.results["spec_fill_us"] = a.fill_us
    finally:
        b.teardown()
    b.report()


if __name__ == "__main__":
    main()
