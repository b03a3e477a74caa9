#!/usr/bin/env python3
"""Side-by-side benchmark of io.containerd.dockerish.v2 and the Go shim io.containerd.runc.v2 of the
same containerd, the Go shim running the very spec dockerish filled for the same container (so both
make runc do the same work), plus Debian's docker.io (`docker run --rm`) and a CRI pod.

Started by tests/bench/run (which builds the binaries first). Every measurement alternates the
runtimes (AB, then BA, …) on one private containerd and prints medians and ratios
(dockerish / Go shim), and a per-phase breakdown of where the time goes. See
tests/bench/RESULTS.md for the method and the latest numbers.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GO = "io.containerd.runc.v2"
DK = "io.containerd.dockerish.v2"
RUNTIMES = [GO, DK]
SHORT = {GO: "runc.v2 (Go)", DK: "dockerish"}
SHIM_BIN = {GO: "containerd-shim-runc-v2", DK: "containerd-shim-dockerish-v2"}
CG_NAME = {GO: "shim-go", DK: "shim-dk"}
RUNC_CMDS = ("create", "start", "delete", "exec", "kill", "state", "ps", "pause", "resume", "update", "features", "run")
SH = ["sh", "-c", ":"]
SLEEP = ["sleep", "1000000"]


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


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def event_time(date, clock, offset):
    """`2026-12-05 07:28:53.541233938 +0000` (ctr events) → seconds since the epoch."""
    whole, _, frac = clock.partition(".")
    t = datetime.datetime.strptime(f"{date} {whole} {offset}", "%Y-%m-%d %H:%M:%S %z").timestamp()
    return t + (float("0." + frac) if frac else 0.0)


def rfc3339(s):
    """`2026-12-05T07:28:53.627311442Z` (exited_at as ctr 1.x prints it) or
    `{"seconds": …, "nanos": …}` (ctr 2.x) → seconds since the epoch."""
    if isinstance(s, dict):
        return int(s.get("seconds", 0)) + int(s.get("nanos", 0)) / 1e9
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", s)
    if not m:
        return float("nan")
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    t = datetime.datetime.fromisoformat(m.group(1) + tz).timestamp()
    return t + (float(m.group(2)) if m.group(2) else 0.0)


class Events:
    """`ctr events` of the namespace, collected in the background."""

    def __init__(self, env):
        self.p = subprocess.Popen(["ctr", "events"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True, env=env)
        self.lines = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line)

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.t.join(timeout=5)

    def parsed(self):
        out = []
        for line in self.lines:
            f = line.rstrip("\n").split(" ", 6)
            if len(f) < 7 or not f[5].startswith("/tasks/"):
                continue
            try:
                out.append((event_time(f[0], f[1], f[2]), f[5], json.loads(f[6])))
            except ValueError:
                continue
        return out


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="dkb-", dir="/tmp")
        self.wrap = os.path.join(self.work, "w")
        self.env_dir = os.path.join(self.work, "env")
        self.specs = os.path.join(self.work, "gospecs")
        self.goetc = os.path.join(self.work, "goetc")
        self.trace = os.path.join(self.work, "trace.log")
        self.cg_root = f"/sys/fs/cgroup/cpuacct/dkbench-{os.getpid()}"
        self.env = None
        self.seq = 0
        self.results = {"containerd": args.containerd, "load_start": loadavg(), "loads": []}
        self.real_runc = shutil.which("runc")
        self.dk_bin = args.shim
        self.dockerd = None
        self.docker_cg_parents = []

    # ---------------------------------------------------------------- setup / teardown
    def go_shim_binary(self):
        if self.args.containerd == "1.6":
            return shutil.which("containerd-shim-runc-v2")
        builds = os.environ.get("DOCKERISH_CONTAINERD_BUILDS") or os.path.join(REPO, "..", "shared", "containerd")
        versions = {"1.7": "1.7.34", "2.3": "2.3.4"}
        return os.path.join(builds, versions[self.args.containerd], "containerd-shim-runc-v2")

    def write_conf(self, trace=False, account=False):
        """The wrapper's mode. Wall-clock passes: runc is not wrapped at all and the shims' wrapper
        only execs (and gives the Go shim its spec). CPU pass: every shim and runc process joins
        its cpuacct group. Breakdown pass: every shim and runc process is timed."""
        lines = [f"bin {name} {real} {self.cg_root}/{cg}\n" for name, real, cg in self.bins]
        lines.append(f"specs containerd-shim-runc-v2 {self.specs}\n")
        if trace:
            lines.append(f"trace {self.trace}\n")
        if account:
            lines.append("account\n")
        runc = os.path.join(self.wrap, "runc")
        if (trace or account) and not os.path.islink(runc):
            os.symlink("dkbench-wrap", runc)
        elif not (trace or account) and os.path.islink(runc):
            os.unlink(runc)
        tmp = os.path.join(self.wrap, ".wrap.conf")
        with open(tmp, "w") as f:
            f.writelines(lines)
        os.rename(tmp, os.path.join(self.wrap, "wrap.conf"))

    def setup(self):
        os.makedirs(self.wrap)
        os.makedirs(self.specs)
        shutil.copy(self.args.wrapper, os.path.join(self.wrap, "dkbench-wrap"))
        self.real_go = self.go_shim_binary()
        if not self.real_go or not os.path.exists(self.real_go):
            raise RuntimeError(f"Go shim of containerd {self.args.containerd} not found ({self.real_go})")
        self.bins = [("containerd-shim-runc-v2", self.real_go, CG_NAME[GO]), ("containerd-shim-dockerish-v2", self.dk_bin, CG_NAME[DK]), ("runc", self.real_runc, "runc")]
        os.makedirs(self.cg_root)
        for name, _, cg in self.bins:
            if name != "runc":
                os.symlink("dkbench-wrap", os.path.join(self.wrap, name))
            os.makedirs(os.path.join(self.cg_root, cg))
        self.write_conf()
        env = dict(os.environ, DOCKERISH_SHIM=os.path.join(self.wrap, "containerd-shim-dockerish-v2"))
        r = sh([self.args.testenv, "up", "--containerd", self.args.containerd, self.env_dir], env=env, timeout=180)
        self.env = dict(os.environ)
        for line in r.stdout.splitlines():
            m = re.match(r"export (\w+)=(.*)", line)
            if m:
                self.env[m.group(1)] = m.group(2).replace("$PATH", os.environ.get("PATH", ""))
        self.ns = self.env["CONTAINERD_NAMESPACE"]
        self.image = self.env["DOCKERISH_IMAGE"]
        self.addr = self.env["CONTAINERD_ADDRESS"]
        self.state = os.path.join(os.path.dirname(self.addr), "state")
        self.make_go_template()

    def teardown(self):
        self.docker_down()
        if self.env is not None:
            self.remove_all()
            sh([self.args.testenv, "down", self.env_dir], check=False, timeout=180)
        for _, _, cg in getattr(self, "bins", []):
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
        return f"b{tag}{self.seq}x{os.getpid()}"

    def bundle(self, cid):
        return os.path.join(self.state, "io.containerd.runtime.v2.task", self.ns, cid)

    def make_go_template(self):
        """The spec dockerish writes for a container, as a template for the Go shim's containers:
        a dockerish container is created once, its filled config.json kept with its id and its
        bundle's etc/ files (hosts, resolv.conf, hostname) made id- and bundle-independent."""
        tid = self.new_id("tpl")
        self.ctr("run", "-d", "--runtime", DK, self.image, tid, *SLEEP)
        b = self.bundle(tid)
        with open(os.path.join(b, "config.json")) as f:
            text = f.read()
        shutil.copytree(os.path.join(b, "etc"), self.goetc)
        self.remove(tid)
        self.tpl_id = tid
        self.tpl_text = text.replace(os.path.join(b, "etc") + "/", self.goetc + "/")
        if b in self.tpl_text:
            raise RuntimeError(f"the filled spec names its bundle elsewhere than etc/: {b}")

    def go_spec(self, cid, args):
        spec = json.loads(self.tpl_text.replace(self.tpl_id, cid))
        spec["process"]["args"] = args
        with open(os.path.join(self.specs, f"{cid}.json"), "w") as f:
            json.dump(spec, f)

    def run_container(self, rt, cid, args, flags=()):
        if rt == GO:
            self.go_spec(cid, args)
        return self.ctr("run", *flags, "--runtime", rt, self.image, cid, *args)

    def check_same_spec(self):
        """The Go shim's runc gets dockerish's filled spec: compare both bundles' config.json."""
        ids = {rt: self.new_id("s") for rt in RUNTIMES}
        specs = {}
        for rt in RUNTIMES:
            self.run_container(rt, ids[rt], SLEEP, ["-d"])
            with open(os.path.join(self.bundle(ids[rt]), "config.json")) as f:
                text = f.read().replace(ids[rt], "ID").replace(os.path.join(self.bundle("ID"), "etc") + "/", "ETC/").replace(self.goetc + "/", "ETC/")
            specs[rt] = json.loads(text)
        for rt in RUNTIMES:
            self.remove(ids[rt])
        same = specs[GO] == specs[DK]
        self.results["same_spec"] = same
        if not same:
            diff = [k for k in set(specs[GO]) | set(specs[DK]) if specs[GO].get(k) != specs[DK].get(k)]
            raise RuntimeError(f"the Go shim's container did not get dockerish's filled spec (differs in {diff})")
        log("  the Go shim's containers get dockerish's filled spec: identical config.json (ids aside)")

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

    def remove(self, cid):
        try:
            self.ctr("task", "kill", "-s", "SIGKILL", cid, check=False, timeout=30)
            for _ in range(100):
                r = self.ctr("task", "ls", check=False)
                if not any(l.split()[:1] == [cid] and "RUNNING" in l for l in r.stdout.splitlines()):
                    break
                time.sleep(0.05)
            self.ctr("task", "rm", cid, check=False, timeout=20)
            self.ctr("container", "rm", cid, check=False, timeout=60)
        except subprocess.TimeoutExpired as e:
            log(f"warning: removing {cid}: {e}")
        try:
            os.unlink(os.path.join(self.specs, f"{cid}.json"))
        except FileNotFoundError:
            pass

    def remove_all(self):
        r = self.ctr("container", "ls", "-q", check=False)
        ids = [l.strip() for l in r.stdout.splitlines() if l.strip()]
        if ids:
            with ThreadPoolExecutor(8) as ex:
                list(ex.map(self.remove, ids))

    def order(self, i):
        return RUNTIMES if i % 2 == 0 else RUNTIMES[::-1]

    def note_load(self):
        self.results["loads"].append(loadavg())

    # ---------------------------------------------------------------- latency and CPU
    def lifecycle(self):
        n = self.args.lifecycles
        log(f"[lifecycle] ctr run --rm IMAGE ID sh -c :   x{n} per runtime (+2 warm-up), alternating; then x{n} with CPU accounting")
        wall = {rt: [] for rt in RUNTIMES}
        cpu = {rt: [] for rt in RUNTIMES}
        runc_cpu = {rt: [] for rt in RUNTIMES}
        hangs = {rt: 0 for rt in RUNTIMES}
        for account in (False, True):
            self.write_conf(account=account)
            for i in range(n + 2):
                for rt in self.order(i):
                    cid = self.new_id("l")
                    if rt == GO:
                        self.go_spec(cid, SH)
                    c0, r0 = self.cpu_ns(CG_NAME[rt]), self.cpu_ns("runc")
                    t0 = time.perf_counter()
                    try:
                        self.ctr("run", "--rm", "--runtime", rt, self.image, cid, *SH, timeout=20)
                    except subprocess.TimeoutExpired:
                        log(f"  {SHORT[rt]}: ctr run --rm {cid} hung (> 20 s): counted as a failure, removed")
                        hangs[rt] += 1
                        self.remove(cid)
                        continue
                    t1 = time.perf_counter()
                    if not self.wait_shim_gone(cid):
                        raise RuntimeError(f"shim of {cid} still running 5 s after ctr run --rm")
                    if i < 2:
                        continue
                    if account:
                        time.sleep(0.02)
                        c1, r1 = self.cpu_ns(CG_NAME[rt]), self.cpu_ns("runc")
                        cpu[rt].append((c1 - c0) / 1e6)
                        runc_cpu[rt].append((r1 - r0) / 1e6)
                    else:
                        wall[rt].append((t1 - t0) * 1e3)
                if i % 10 == 0:
                    self.note_load()
        self.write_conf()
        self.results["lifecycle"] = {
            rt: {"wall_ms": med(wall[rt]), "shim_cpu_ms": med(cpu[rt]), "shim_cpu_mean_ms": statistics.mean(cpu[rt]) if cpu[rt] else float("nan"), "runc_cpu_ms": med(runc_cpu[rt]), "hangs": hangs[rt]}
            for rt in RUNTIMES
        }

    def exec_latency(self):
        n = self.args.execs
        log(f"[exec] ctr task exec ID true   x{n} per runtime (+3 warm-up), alternating")
        ids = {rt: self.new_id("e") for rt in RUNTIMES}
        for rt in RUNTIMES:
            self.run_container(rt, ids[rt], SLEEP, ["-d"])
        lat = {rt: [] for rt in RUNTIMES}
        for i in range(n + 3):
            for rt in self.order(i):
                t0 = time.perf_counter()
                self.ctr("task", "exec", "--exec-id", f"x{i}", ids[rt], "true")
                t1 = time.perf_counter()
                if i >= 3:
                    lat[rt].append((t1 - t0) * 1e3)
        self.note_load()
        for rt in RUNTIMES:
            self.remove(ids[rt])
        self.results["exec"] = {rt: {"wall_ms": med(lat[rt])} for rt in RUNTIMES}

    def create_latency(self):
        n = self.args.creates
        log(f"[create] ctr task start -d of a created container (shim start + Create + Start RPCs)   x{n} per runtime")
        lat = {rt: [] for rt in RUNTIMES}
        for i in range(n + 2):
            for rt in self.order(i):
                cid = self.new_id("c")
                if rt == GO:
                    self.go_spec(cid, SLEEP)
                self.ctr("container", "create", "--runtime", rt, self.image, cid, *SLEEP)
                t0 = time.perf_counter()
                self.ctr("task", "start", "-d", "--null-io", cid)
                t1 = time.perf_counter()
                self.remove(cid)
                if i >= 2:
                    lat[rt].append((t1 - t0) * 1e3)
        self.note_load()
        self.results["create"] = {rt: {"wall_ms": med(lat[rt])} for rt in RUNTIMES}

    # ---------------------------------------------------------------- where the time goes
    def traced(self):
        """Records each shim and runc invocation and every task event for `ctr run --rm` and
        `ctr task exec`, both runtimes, and reduces them to per-phase medians."""
        n = self.args.traced
        log(f"[breakdown] ctr run --rm and ctr task exec with every shim/runc invocation and task event timed   x{n} per runtime")
        self.write_conf(trace=True)
        ev = Events(self.env)
        time.sleep(0.5)
        runs = []
        try:
            for i in range(n + 1):
                for rt in self.order(i):
                    cid = self.new_id("t")
                    if rt == GO:
                        self.go_spec(cid, SH)
                    t0 = time.time()
                    self.ctr("run", "--rm", "--runtime", rt, self.image, cid, *SH, timeout=20)
                    t1 = time.time()
                    self.wait_shim_gone(cid)
                    if i >= 1:
                        runs.append(("run", rt, cid, None, t0, t1))
            ids = {rt: self.new_id("te") for rt in RUNTIMES}
            for rt in RUNTIMES:
                self.run_container(rt, ids[rt], SLEEP, ["-d"])
            for i in range(n + 1):
                for rt in self.order(i):
                    eid = f"x{i}"
                    t0 = time.time()
                    self.ctr("task", "exec", "--exec-id", eid, ids[rt], "true")
                    t1 = time.time()
                    if i >= 1:
                        runs.append(("exec", rt, ids[rt], eid, t0, t1))
            time.sleep(1.0)
            for rt in RUNTIMES:
                self.remove(ids[rt])
        finally:
            self.write_conf(trace=False)
            ev.stop()
        self.note_load()
        procs = []
        with open(self.trace) as f:
            for line in f:
                name, pid, a, b, status, cpu, argv = line.rstrip("\n").split(" ", 6)
                procs.append({"name": name, "start": int(a) / 1e9, "end": int(b) / 1e9, "status": int(status), "cpu": int(cpu) / 1e6, "argv": argv.split("\x1f")})
        os.unlink(self.trace)
        self.results["breakdown"] = reduce_trace(runs, procs, ev.parsed())

    # ---------------------------------------------------------------- memory
    def start_many(self, rt, count):
        ids = [self.new_id("m") for _ in range(count)]
        with ThreadPoolExecutor(self.args.parallel) as ex:
            list(ex.map(lambda c: self.run_container(rt, c, SLEEP, ["-d"]), ids))
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
        same way: 1 container, then 20 (marginal Pss)."""
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
            res[rt] = {"one": o, "twenty_total_pss_kib": twenty[rt]["pss_kib"], "marginal_pss_kib": (twenty[rt]["pss_kib"] - o["pss_kib"]) / 19, "twenty_threads": twenty[rt]["threads"]}
        self.note_load()
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
        self.results["scale"] = {"containers": n, **res}

    # ---------------------------------------------------------------- runc alone
    def runc_floor(self):
        """Bare `runc run` of the filled spec (Docker's seccomp profile) and of the same spec
        without `linux.seccomp`: runc's own work, the floor of every lifecycle."""
        n = self.args.lifecycles
        log(f"[floor] bare runc run of the filled spec, with and without its seccomp profile   x{n} each, alternating")
        b = os.path.join(self.work, "bundle")
        rootfs = os.path.join(b, "rootfs")
        os.makedirs(os.path.join(rootfs, "bin"))
        for d in ["proc", "dev", "sys", "tmp", "etc"]:
            os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        shutil.copy(shutil.which("busybox"), os.path.join(rootfs, "bin", "busybox"))
        os.symlink("busybox", os.path.join(rootfs, "bin", "sh"))
        root = os.path.join(self.work, "runc-root")
        walls = {"profile": [], "none": []}
        for i in range(n + 2):
            for variant in (["profile", "none"] if i % 2 == 0 else ["none", "profile"]):
                cid = self.new_id("f")
                spec = json.loads(self.tpl_text.replace(self.tpl_id, cid))
                spec["process"]["args"] = SH
                spec["process"]["terminal"] = False
                spec["root"] = {"path": rootfs}
                if variant == "none":
                    spec["linux"].pop("seccomp", None)
                with open(os.path.join(b, "config.json"), "w") as f:
                    json.dump(spec, f)
                t0 = time.perf_counter()
                sh([self.real_runc, "--root", root, "run", "--bundle", b, cid])
                t1 = time.perf_counter()
                if i >= 2:
                    walls[variant].append((t1 - t0) * 1e3)
        self.note_load()
        self.results["runc_floor_ms"] = {k: med(v) for k, v in walls.items()}

    # ---------------------------------------------------------------- Docker
    def docker_up(self):
        """Debian's docker.io, unpacked (not installed: its maintainer scripts would start a
        system daemon), run as a private dockerd: own data root, exec root and socket, no
        iptables, no bridge, no IP forwarding changes, its own managed containerd."""
        cache = os.path.join(os.environ.get("DOCKERISH_TEST_CACHE", "/var/cache/dockerish-tests"), "docker.io")
        os.makedirs(cache, exist_ok=True)
        debs = sorted(x for x in os.listdir(cache) if x.endswith(".deb"))
        if not debs:
            log("  fetching Debian's docker.io package (apt-get download)")
            sh(["apt-get", "download", "docker.io"], cwd=cache, timeout=600)
            debs = sorted(x for x in os.listdir(cache) if x.endswith(".deb"))
        deb = debs[-1]
        root = os.path.join(cache, deb[: -len(".deb")])
        if not os.path.exists(os.path.join(root, "usr", "sbin", "dockerd")):
            tmp = root + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            sh(["dpkg-deb", "-x", os.path.join(cache, deb), tmp])
            os.rename(tmp, root)
        self.results["docker_version"] = deb.split("_")[1]
        d = os.path.join(self.work, "docker")
        os.makedirs(d)
        with open(os.path.join(d, "daemon.json"), "w") as f:
            f.write("{}\n")
        self.docker_sock = os.path.join(d, "docker.sock")
        self.docker_env = {"PATH": f"{root}/usr/bin:{root}/usr/sbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "DOCKER_HOST": f"unix://{self.docker_sock}"}
        self.docker_cg_parents = [p for p in (os.path.join("/sys/fs/cgroup", c, "docker") for c in os.listdir("/sys/fs/cgroup")) if not os.path.exists(p)]
        # dockerd creates these whatever its roots are (the plugin socket dir is fixed).
        self.docker_dirs = [p for p in ("/etc/docker", "/run/docker") if not os.path.exists(p)]
        logf = open(os.path.join(d, "dockerd.log"), "w")
        self.dockerd = subprocess.Popen(
            [f"{root}/usr/sbin/dockerd", "--data-root", f"{d}/data", "--exec-root", f"{d}/exec", "-H", f"unix://{self.docker_sock}", "--pidfile", f"{d}/dockerd.pid",
             "--config-file", f"{d}/daemon.json", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none", "--userland-proxy=false", "--log-level=warn"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=self.docker_env, start_new_session=True)
        for _ in range(300):
            if sh(["docker", "version"], check=False, env=self.docker_env).returncode == 0:
                break
            if self.dockerd.poll() is not None:
                raise RuntimeError(f"dockerd exited ({self.dockerd.returncode}): see {d}/dockerd.log")
            time.sleep(0.1)
        else:
            raise RuntimeError("dockerd did not answer within 30 s")
        tar = os.path.join(self.work, "image.tar")
        self.ctr("images", "export", tar, self.image)
        sh(["docker", "load", "-i", tar], env=self.docker_env, timeout=300)

    def docker_down(self):
        if self.dockerd is None:
            return
        d = os.path.join(self.work, "docker")
        r = sh(["docker", "ps", "-aq"], check=False, env=self.docker_env)
        for cid in r.stdout.split():
            sh(["docker", "rm", "-f", cid], check=False, env=self.docker_env)
        self.dockerd.terminate()
        try:
            self.dockerd.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.dockerd.kill()
            self.dockerd.wait()
        self.dockerd = None
        with open("/proc/self/mountinfo") as f:
            mounts = [l.split()[4] for l in f if l.split()[4].startswith(d + "/")]
        for m in sorted(mounts, key=len, reverse=True):
            sh(["umount", "-l", m], check=False)
        for p in self.docker_cg_parents:
            try:
                os.rmdir(p)
            except OSError:
                pass
        for p in self.docker_dirs:
            shutil.rmtree(p, ignore_errors=True)

    def docker(self):
        n = self.args.dockers
        log(f"[docker] docker run --rm --network none IMAGE sh -c : vs ctr run --rm --runtime dockerish   x{n} each, alternating")
        self.docker_up()
        walls = {"docker": [], DK: []}
        try:
            for i in range(n + 2):
                for which in (["docker", DK] if i % 2 == 0 else [DK, "docker"]):
                    t0 = time.perf_counter()
                    if which == "docker":
                        sh(["docker", "run", "--rm", "--network", "none", self.image.replace("docker.io/", ""), *SH], env=self.docker_env, timeout=60)
                    else:
                        self.ctr("run", "--rm", "--runtime", DK, self.image, self.new_id("d"), *SH, timeout=20)
                    t1 = time.perf_counter()
                    if i >= 2:
                        walls[which].append((t1 - t0) * 1e3)
        finally:
            self.docker_down()
        self.note_load()
        self.results["docker"] = {k: med(v) for k, v in walls.items()}

    # ---------------------------------------------------------------- CRI pod
    def pod(self):
        if not self.args.pod_bench:
            return
        log(f"[pod] CRI: RunPodSandbox + 10 x (CreateContainer + StartContainer), then 10 x StopContainer + StopPodSandbox   x{self.args.pods} per handler, alternating")
        out = os.path.join(self.work, "pod.json")
        # The shim under test, not the harness's default (the debug build).
        env = dict(os.environ, DOCKERISH_SHIM=self.dk_bin)
        r = subprocess.run([self.args.pod_bench, "--containerd", self.args.containerd, "--rounds", str(self.args.pods), "--json", out], stdin=subprocess.DEVNULL, stderr=sys.stderr, stdout=subprocess.DEVNULL, timeout=1800, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"pod bench failed ({r.returncode})")
        with open(out) as f:
            self.results["pod"] = json.load(f)
        self.note_load()

    def sizes(self):
        def stripped(p):
            out = os.path.join(self.work, "stripped")
            shutil.copy(p, out)
            sh(["strip", out])
            s = os.path.getsize(out)
            os.unlink(out)
            return s

        self.results["binary"] = {GO: {"stripped_bytes": stripped(self.real_go)}, DK: {"stripped_bytes": stripped(self.dk_bin)}}


# -------------------------------------------------------------------- trace reduction
def runc_cmd(argv):
    for i, a in enumerate(argv):
        if a in RUNC_CMDS:
            return a, (argv[-2] if a == "kill" else argv[-1])
    return "?", ""


def flag(argv, name):
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def reduce_trace(runs, procs, events):
    """Per-run timelines (ms after ctr started) → medians per phase and runtime."""
    phases = {"run": {rt: {} for rt in RUNTIMES}, "exec": {rt: {} for rt in RUNTIMES}}
    counts = {"run": {rt: [] for rt in RUNTIMES}, "exec": {rt: [] for rt in RUNTIMES}}

    def add(kind, rt, name, v):
        if v == v:  # not NaN
            phases[kind][rt].setdefault(name, []).append(v * 1e3)

    starts = sorted(r[4] for r in runs)
    for kind, rt, cid, eid, t0, t1 in runs:
        # Up to the next measured command (the last one: up to 2 s after, for its `shim delete`).
        bound = min([t for t in starts if t > t0] + [t1 + 2])
        mine = [p for p in procs if t0 <= p["start"] < bound]
        runc = [(runc_cmd(p["argv"]), p) for p in mine if p["name"] == "runc"]
        runc = [(c, p) for (c, i), p in runc if i == cid]
        ev = {}
        for ts, topic, body in events:
            if body.get("container_id") != cid or not (t0 - 0.01 <= ts < bound):
                continue
            if kind == "exec" and topic in ("/tasks/exit", "/tasks/exec-started") and body.get("exec_id", body.get("id")) != eid:
                continue
            ev.setdefault(topic, (ts, body))
        if kind == "run":
            shim = [p for p in mine if p["name"] == SHIM_BIN[rt] and flag(p["argv"], "-id") == cid]
            start = next((p for p in shim if "start" in p["argv"]), None)
            delete = next((p for p in shim if "delete" in p["argv"]), None)
            create = next((p for c, p in runc if c == "create"), None)
            rstart = next((p for c, p in runc if c == "start"), None)
            rdel = [p for c, p in runc if c == "delete"]
            rpc_del = next((p for p in rdel if not (delete and delete["start"] <= p["start"] <= delete["end"])), None)
            in_shim_del = [p for p in rdel if delete and delete["start"] <= p["start"] <= delete["end"]]
            ts = lambda topic: ev.get(topic, (float("nan"),))[0]
            exited = rfc3339(ev["/tasks/exit"][1].get("exited_at", "")) if "/tasks/exit" in ev else float("nan")
            nan = float("nan")
            add(kind, rt, "ctr → `shim start` runs (containerd: container, snapshot)", (start["start"] - t0) if start else nan)
            add(kind, rt, "`shim start` until it replies", (start["end"] - start["start"]) if start else nan)
            add(kind, rt, "reply → `runc create` starts (connect, Create before runc)", (create["start"] - start["end"]) if start and create else nan)
            add(kind, rt, "`runc create`", (create["end"] - create["start"]) if create else nan)
            # Same spec, same runc: a wall-time difference with the same CPU is waiting, not work.
            add(kind, rt, "  CPU of `runc create` (and the children it reaped)", create["cpu"] if create else nan)
            add(kind, rt, "`runc create` done → TaskCreate", (ts("/tasks/create") - create["end"]) if create else nan)
            add(kind, rt, "TaskCreate → TaskStart (Create reply, Wait, Start)", ts("/tasks/start") - ts("/tasks/create"))
            add(kind, rt, "  of which `runc start`", (rstart["end"] - rstart["start"]) if rstart else 0.0)
            add(kind, rt, "TaskStart → process exited (`sh -c :` runs)", exited - ts("/tasks/start"))
            add(kind, rt, "exit → TaskExit", ts("/tasks/exit") - exited)
            add(kind, rt, "TaskExit → `runc delete` starts (ctr: Wait returns, Delete)", (rpc_del["start"] - ts("/tasks/exit")) if rpc_del else nan)
            add(kind, rt, "`runc delete` (Delete RPC)", (rpc_del["end"] - rpc_del["start"]) if rpc_del else nan)
            add(kind, rt, "`runc delete` done → TaskDelete", (ts("/tasks/delete") - rpc_del["end"]) if rpc_del else nan)
            add(kind, rt, "TaskDelete → `shim delete` starts (Shutdown, disconnect)", (delete["start"] - ts("/tasks/delete")) if delete else nan)
            add(kind, rt, "`shim delete`", (delete["end"] - delete["start"]) if delete else nan)
            add(kind, rt, "  of which `runc delete`", sum(p["end"] - p["start"] for p in in_shim_del))
            add(kind, rt, "TaskDelete → ctr returns", t1 - ts("/tasks/delete"))
            add(kind, rt, "`shim delete` ends → ctr returns", (t1 - delete["end"]) if delete else nan)
            add(kind, rt, "CPU of the `shim start` process", start["cpu"] if start else nan)
            add(kind, rt, "CPU of the `shim delete` process (with its runc)", delete["cpu"] if delete else nan)
            add(kind, rt, "total: ctr run --rm", t1 - t0)
            add(kind, rt, "runc: time in runc processes", sum(p["end"] - p["start"] for _, p in runc))
            counts[kind][rt].append(len(runc))
        else:
            ex = next((p for c, p in runc if c == "exec"), None)
            ts = lambda topic: ev.get(topic, (float("nan"),))[0]
            exited = rfc3339(ev["/tasks/exit"][1].get("exited_at", "")) if "/tasks/exit" in ev else float("nan")
            nan = float("nan")
            add(kind, rt, "ctr → ExecAdded (ctr start, Exec RPC)", ts("/tasks/exec-added") - t0)
            add(kind, rt, "ExecAdded → `runc exec` starts (Start RPC before runc)", (ex["start"] - ts("/tasks/exec-added")) if ex else nan)
            add(kind, rt, "`runc exec`", (ex["end"] - ex["start"]) if ex else nan)
            add(kind, rt, "`runc exec` done → ExecStarted", (ts("/tasks/exec-started") - ex["end"]) if ex else nan)
            add(kind, rt, "ExecStarted → process exited", exited - ts("/tasks/exec-started"))
            add(kind, rt, "exit → TaskExit", ts("/tasks/exit") - exited)
            add(kind, rt, "TaskExit → ctr returns (Wait, Delete exec)", t1 - ts("/tasks/exit"))
            add(kind, rt, "total: ctr task exec", t1 - t0)
            counts[kind][rt].append(len(runc))
    return {
        kind: {"phases": list(phases[kind][GO].keys() or phases[kind][DK].keys()), **{rt: {k: med(v) for k, v in phases[kind][rt].items()} for rt in RUNTIMES}, "runc_processes": {rt: med(counts[kind][rt]) for rt in RUNTIMES}}
        for kind in phases
    }


# -------------------------------------------------------------------- report
def report(R, out_json):
    rows = []

    def row(metric, go, dk, target=None, fmt="{:.1f}", absolute=None):
        ratio = dk / go if go else float("nan")
        if absolute is not None:
            ok = "met" if dk <= absolute else "MISSED"
            tgt = f"<= {absolute:.2f} {ok}"
        elif target is not None:
            tgt = f"<= {target:.2f} " + ("met" if ratio <= target else "MISSED")
        else:
            tgt = ""
        rows.append((metric, fmt.format(go), fmt.format(dk), f"{ratio:.2f}", tgt))

    if "lifecycle" in R:
        l = R["lifecycle"]
        row("ctr run --rm … sh -c : wall (ms)", l[GO]["wall_ms"], l[DK]["wall_ms"], 0.75)
    if "exec" in R:
        row("ctr task exec wall (ms)", R["exec"][GO]["wall_ms"], R["exec"][DK]["wall_ms"], 0.90)
    if "create" in R:
        row("ctr task start -d (shim start + Create + Start) (ms)", R["create"][GO]["wall_ms"], R["create"][DK]["wall_ms"], 0.85)
    if "lifecycle" in R:
        l = R["lifecycle"]
        row("shim CPU per lifecycle (ms)", l[GO]["shim_cpu_ms"], l[DK]["shim_cpu_ms"], 0.30, "{:.2f}")
        row("runc CPU per lifecycle (ms, info)", l[GO]["runc_cpu_ms"], l[DK]["runc_cpu_ms"], None, "{:.2f}")
        row("hung lifecycles (count)", l[GO]["hangs"], l[DK]["hangs"], None, "{:.0f}")
    if "memory" in R:
        m = R["memory"]
        g, d = m[GO]["one"], m[DK]["one"]
        row("idle Pss, one shim + one container (MiB)", g["pss_kib"] / 1024, d["pss_kib"] / 1024, 0.22, "{:.2f}")
        row("marginal Pss per container, 20 running (MiB)", m[GO]["marginal_pss_kib"] / 1024, m[DK]["marginal_pss_kib"] / 1024, None, "{:.2f}", absolute=0.60)
        row("idle Pss anon (MiB, info)", g["pss_anon_kib"] / 1024, d["pss_anon_kib"] / 1024, None, "{:.2f}")
        row("threads, one shim (info)", g["threads"], d["threads"], None, "{:.0f}")
    if "pod" in R:
        p = R["pod"]
        row("CRI pod of 10: create + start all (ms)", p["runc"]["up_ms"], p["dockerish"]["up_ms"])
        row("CRI pod of 10: stop all (ms)", p["runc"]["down_ms"], p["dockerish"]["down_ms"])
        row("CRI pod of 10: create + start all, then stop all (ms)", p["runc"]["total_ms"], p["dockerish"]["total_ms"], 0.80)
    if "scale" in R:
        s = R["scale"]
        row(f"total Pss, {s['containers']} containers (MiB)", s[GO]["pss_kib"] / 1024, s[DK]["pss_kib"] / 1024)
    if "binary" in R:
        b = R["binary"]
        row("binary size, stripped (MiB)", b[GO]["stripped_bytes"] / 2**20, b[DK]["stripped_bytes"] / 2**20, None, "{:.2f}")
    hdr = ("metric (median)", "Go shim, same spec", "dockerish", "ratio", "target")
    lines = table(hdr, rows)
    if "docker" in R:
        d = R["docker"]
        lines.append("")
        lines += table(("`docker run --rm` vs dockerish (median)", f"docker.io {R.get('docker_version', '')}", "dockerish (ctr run --rm)", "ratio", ""), [("sh -c : wall (ms)", f"{d['docker']:.1f}", f"{d[DK]:.1f}", f"{d[DK] / d['docker']:.2f}", "reported")])
    if "runc_floor_ms" in R:
        f = R["runc_floor_ms"]
        lines.append(f"\nfloor: bare `runc run` of the filled spec (sh -c :): {f['profile']:.1f} ms with Docker's seccomp profile, {f['none']:.1f} ms without")
    if "breakdown" in R:
        for kind, title in (("run", "ctr run --rm … sh -c :"), ("exec", "ctr task exec ID true")):
            b = R["breakdown"][kind]
            rows = [(ph, f"{b[GO].get(ph, float('nan')):.1f}", f"{b[DK].get(ph, float('nan')):.1f}") for ph in b["phases"]]
            rows.append(("runc processes (count)", f"{b['runc_processes'][GO]:.0f}", f"{b['runc_processes'][DK]:.0f}"))
            lines.append("")
            lines += table((f"where the time goes: {title} (median ms)", "Go shim", "dockerish"), rows)
    if R.get("loads"):
        lines.append(f"\nload average (1 min) during the run: {min(R['loads']):.1f}–{max(R['loads']):.1f}; containerd {R.get('containerd')}")
    print("\n".join(lines))
    with open(out_json or os.devnull, "w") as f:
        json.dump(R, f, indent=1)


def table(hdr, rows):
    w = [max(len(str(r[i])) for r in list(rows) + [hdr]) for i in range(len(hdr))]
    lines = ["| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(hdr)) + " |", "|" + "|".join("-" * (x + 2) for x in w) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) + " |")
    return lines


STEPS = ["sizes", "memory", "lifecycle", "exec", "create", "breakdown", "floor", "docker", "pod", "scale"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--shim", required=True)
    ap.add_argument("--wrapper", required=True)
    ap.add_argument("--testenv", required=True)
    ap.add_argument("--pod-bench")
    ap.add_argument("--containerd", default="1.6", choices=["1.6", "1.7", "2.3"])
    ap.add_argument("--json")
    ap.add_argument("--only", help="comma list of: " + ",".join(STEPS) + " (scale is not in the default set)")
    a = ap.parse_args()
    a.lifecycles = 10 if a.quick else 40
    a.execs = 15 if a.quick else 60
    a.creates = 6 if a.quick else 30
    a.traced = 5 if a.quick else 15
    a.dockers = 5 if a.quick else 15
    a.pods = 2 if a.quick else 5
    a.mem_rounds = 1 if a.quick else 3
    a.scale = 50 if a.quick else 200
    a.parallel = 4
    a.settle = 2.0
    b = Bench(a)

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    steps = [s for s in STEPS if s != "scale"]
    if a.only:
        steps = [s for s in STEPS if s in a.only.split(",")]
    try:
        b.setup()
        b.check_same_spec()
        for s in steps:
            t = time.time()
            {"sizes": b.sizes, "memory": b.memory, "lifecycle": b.lifecycle, "floor": b.runc_floor, "exec": b.exec_latency, "create": b.create_latency, "breakdown": b.traced, "docker": b.docker, "pod": b.pod, "scale": b.scale}[s]()
            log(f"  ({s}: {time.time() - t:.0f} s, load {loadavg():.1f})")
    finally:
        b.teardown()
    b.results["load_end"] = loadavg()
    report(b.results, a.json)


if __name__ == "__main__":
    main()
