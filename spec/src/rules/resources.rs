//! Resources: CG-4 (memory), CG-5 (CPU shares, cpuset, CFS, real-time), CG-6 (block I/O),
//! CG-7 (settings the kernel cannot honour are discarded), CPU-1 (`cpus` → CFS quota), PID-1
//! (`pids-limit`).
//!
//! [`Ctx::resource_plan`] validates the annotations and applies Docker's create-time defaults
//! (`adaptContainerSettings`, `verifyPlatformContainerResources`) into a [`Plan`]; [`Ctx::emit`]
//! only writes the plan, merged into the producer's `linux.resources` (CG-9: merged, not
//! replaced, because the producer may have set more).

use super::Ctx;
use crate::config::Origin;
use crate::error::SpecError;
use crate::oci::{key, obj_in};
use crate::parse;
use serde_json::{Map, Value};

pub(crate) const IDS: &[&str] = &["CG-4", "CG-5", "CG-6", "CG-7", "CG-9", "CPU-1", "PID-1"];

/// Docker's minimum memory limit and reservation (6 MiB).
const MIN_MEMORY: i64 = 6291456;

/// `linux.resources.memory` to write.
#[derive(Debug, Default)]
struct MemoryPlan {
    limit: Option<i64>,
    reservation: Option<i64>,
    /// `-1` (unlimited) or a byte count.
    swap: Option<i64>,
    swappiness: Option<i64>,
    oom_kill_disable: Option<bool>,
    /// CG-4: `OomKillDisable` defaults to `&false`, so cgroup v1 specs carry it.
    oom_kill_disable_default: bool,
}

/// `linux.resources.cpu` to write, in the order Docker assigns them (later fields override).
#[derive(Debug, Default)]
struct CpuPlan {
    /// CPU-1: `(period, quota)` derived from `cpus`.
    nano: Option<(i64, i64)>,
    shares: Option<i64>,
    cpus: Option<String>,
    mems: Option<String>,
    period: Option<i64>,
    quota: Option<i64>,
    rt_period: Option<i64>,
    rt_runtime: Option<i64>,
}

/// What `WithResources` writes after validation. `None` = leave that part alone.
#[derive(Debug, Default)]
struct Plan {
    memory: Option<MemoryPlan>,
    cpu: Option<CpuPlan>,
    /// `Some(None)`: remove `pids` (PID-1: `<= 0` means no limit).
    pids: Option<Option<i64>>,
    /// `Some(w)`: `blockIO` present (CG-6), with `weight` when `w` is `Some`.
    block_io: Option<Option<i64>>,
    /// CG-7 notes: settings the kernel cannot honour, discarded.
    discarded: Vec<&'static str>,
    /// CG-5: remove ctr's default `cpu.shares` (Docker sets none unless asked).
    drop_ctr_shares: bool,
}

/// A new cgroup's `cpu.rt_period_us` (the kernel's `sched_rt_period_us` default).
const DEFAULT_RT_PERIOD: i64 = 1_000_000;

/// The `cpu.shares` `ctr run` writes when `--cpu-shares` is not given.
const CTR_DEFAULT_SHARES: i64 = 1024;

impl Ctx<'_> {
    pub(crate) fn resources(&mut self) -> Result<(), SpecError> {
        let plan = self.resource_plan()?;
        self.emit(plan)
    }

    /// CG-4..7, CPU-1, PID-1 validation and create-time defaults
    /// (daemon_unix.go `verifyPlatformContainerResources`, `adaptContainerSettings`).
    fn resource_plan(&self) -> Result<Plan, SpecError> {
        let s = &self.s;
        let v2 = self.host.cgroup_v2();
        let e = |k: &str, m: &str| SpecError::annotation(s.key(k), m);
        let mut plan = Plan::default();

        // CG-4
        let memory = s.memory.unwrap_or(0);
        if memory > 0 && memory < MIN_MEMORY {
            return Err(e("memory", "Minimum memory limit allowed is 6MB"));
        }
        let mut swap = s.memory_swap.unwrap_or(0);
        if swap > 0 && memory == 0 {
            return Err(e("memory-swap", "You should always set the Memory limit when using Memoryswap limit, see usage"));
        }
        if swap > 0 && swap < memory {
            return Err(e("memory-swap", "Minimum memoryswap limit should be larger than memory limit, see usage"));
        }
        let reservation = s.memory_reservation.unwrap_or(0);
        if reservation > 0 && reservation < MIN_MEMORY {
            return Err(e("memory-reservation", "Minimum memory reservation allowed is 6MB"));
        }
        if memory > 0 && reservation > 0 && memory < reservation {
            return Err(e("memory-reservation", "Minimum memory limit can not be less than memory reservation limit, see usage"));
        }
        if memory > 0 && swap == 0 {
            swap = memory * 2; // adaptContainerSettings
        }
        let mem_req = s.memory.is_some() || s.memory_reservation.is_some() || s.memory_swap.is_some() || s.memory_swappiness.is_some() || s.oom_kill_disable.is_some();
        if mem_req || (self.fill && !v2) {
            let mut m = MemoryPlan {
                limit: Some(memory).filter(|m| *m > 0),
                reservation: Some(reservation).filter(|r| *r > 0),
                swap: if s.memory_swap == Some(-1) { Some(-1) } else { Some(swap).filter(|x| *x > 0) },
                ..MemoryPlan::default()
            };
            // CG-7: cgroup v2 has no swappiness nor OOM-killer switch; Docker discards them.
            if !v2 {
                m.swappiness = s.memory_swappiness.filter(|x| *x != -1);
                m.oom_kill_disable = s.oom_kill_disable;
                m.oom_kill_disable_default = self.fill && s.oom_kill_disable.is_none();
            } else if s.memory_swappiness.is_some() || s.oom_kill_disable.is_some() {
                plan.discarded.push("cgroup v2: memory-swappiness / oom-kill-disable discarded");
            }
            plan.memory = Some(m);
        }

        // CG-5 / CPU-1
        if let Some(sh) = s.cpu_shares.filter(|x| *x < 0) {
            return Err(e("cpu-shares", &format!("invalid CPU shares ({sh}): value must be a positive integer")));
        }
        if s.cpu_period.is_some_and(|p| p != 0 && !(1000..=1_000_000).contains(&p)) {
            return Err(e("cpu-period", "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"));
        }
        if s.cpu_quota.is_some_and(|q| q > 0 && q < 1000) {
            return Err(e("cpu-quota", "CPU cfs quota can not be less than 1ms (i.e. 1000)"));
        }
        if let Some(n) = s.nano_cpus.filter(|n| *n != 0) {
            if s.cpu_period.unwrap_or(0) > 0 {
                return Err(e("cpus", "Conflicting options: Nano CPUs and CPU Period cannot both be set"));
            }
            if s.cpu_quota.unwrap_or(0) > 0 {
                return Err(e("cpus", "Conflicting options: Nano CPUs and CPU Quota cannot both be set"));
            }
            let ncpu = self.host.num_cpus().max(1) as i64;
            if n < 0 || n > ncpu * 1_000_000_000 {
                return Err(e("cpus", &format!("range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")));
            }
        }
        let avail = self.host.cpuset_available();
        for (k, val, what, plural) in [("cpuset-cpus", &s.cpuset_cpus, "cpus", "CPUs"), ("cpuset-mems", &s.cpuset_mems, "mems", "memory nodes")] {
            let Some(val) = val else { continue };
            let req = parse::parse_cpuset(val).map_err(|m| e(k, &format!("Invalid value {val} for cpuset {what}: {m}")))?;
            if let Some((cpus, mems)) = &avail {
                let have_s = if what == "cpus" { cpus } else { mems };
                let have = parse::parse_cpuset(have_s).unwrap_or_default();
                if req.iter().any(|c| !have.contains(c)) {
                    return Err(e(k, &format!("Requested {plural} are not available - requested {val}, available: {have_s}")));
                }
            }
        }
        let rt_p = s.cpu_rt_period.unwrap_or(0);
        let rt_r = s.cpu_rt_runtime.unwrap_or(0);
        if rt_p != 0 || rt_r != 0 {
            let k = if rt_r != 0 { "cpu-rt-runtime" } else { "cpu-rt-period" };
            if v2 || !self.host.cpu_rt_supported() {
                return Err(e(k, "kernel does not support CPU real-time scheduler"));
            }
            if rt_p != 0 && rt_r > rt_p {
                return Err(e("cpu-rt-runtime", "cpu real-time runtime cannot be higher than cpu real-time period"));
            }
            if rt_r > 0 {
                self.check_rt_budget(rt_p, rt_r)?;
            }
        }
        let cpu_req = s.nano_cpus.is_some() || s.cpu_shares.is_some() || s.cpu_period.is_some() || s.cpu_quota.is_some() || s.cpuset_cpus.is_some() || s.cpuset_mems.is_some() || rt_p != 0 || rt_r != 0;
        if cpu_req {
            plan.cpu = Some(CpuPlan {
                // CPU-1: period 100ms, quota = NanoCPUs * period / 1e9 (integer division).
                nano: s.nano_cpus.filter(|n| *n > 0).map(|n| (100000, n * 100000 / 1_000_000_000)),
                shares: s.cpu_shares.filter(|x| *x != 0),
                cpus: s.cpuset_cpus.clone(),
                mems: s.cpuset_mems.clone(),
                period: s.cpu_period.filter(|x| *x != 0),
                quota: s.cpu_quota.filter(|x| *x != 0),
                rt_period: Some(rt_p).filter(|x| *x != 0),
                rt_runtime: Some(rt_r).filter(|x| *x != 0),
            });
        }

        plan.drop_ctr_shares = self.fill && self.origin == Origin::Ctr && s.cpu_shares.is_none();

        // PID-1: <= 0 means "no limit" (the create route turns it into nil).
        plan.pids = s.pids_limit.map(|p| Some(p).filter(|p| *p > 0));

        // CG-7 before CG-6's range check, as Docker: an unsupported weight is dropped, not checked.
        let mut blkio_weight = s.blkio_weight;
        if blkio_weight.is_some_and(|w| w > 0) && !self.host.blkio_weight_supported() {
            plan.discarded.push("blkio-weight discarded: the kernel does not support Block I/O weight or the cgroup is not mounted");
            blkio_weight = None;
        }
        // CG-6
        if blkio_weight.is_some_and(|w| w != 0 && !(10..=1000).contains(&w)) {
            return Err(e("blkio-weight", "Range of blkio weight is from 10 to 1000"));
        }
        // CG-6: blockIO is always present in a Docker spec.
        if s.blkio_weight.is_some() || self.fill {
            plan.block_io = Some(blkio_weight.filter(|w| *w != 0));
        }
        Ok(plan)
    }

    /// CG-5: the kernel grants a cgroup's real-time runtime only out of its parent's (moby's
    /// docs: "the sum of all runtimes across containers cannot exceed the amount allotted to the
    /// parent cgroup"); checked here so that the error names the annotation and the numbers
    /// instead of runc's bare "invalid argument".
    fn check_rt_budget(&self, rt_p: i64, rt_r: i64) -> Result<(), SpecError> {
        let path = self.doc.cgroups_path().to_string();
        let Some(b) = self.host.cpu_rt_budget(&path).map_err(|e| Self::host_err("CG-5", e))? else { return Ok(()) };
        if b.runtime < 0 {
            return Ok(()); // unlimited
        }
        // The kernel's to_ratio(): runtime/period in 2^-20 units.
        let ratio = |p: i64, r: i64| if p > 0 && r > 0 { ((r as u128) << 20) / p as u128 } else { 0 };
        let period = if rt_p > 0 { rt_p } else { DEFAULT_RT_PERIOD };
        let used: u128 = b.children.iter().map(|(p, r)| ratio(*p, *r)).sum();
        let left = ratio(b.period, b.runtime).saturating_sub(used);
        if ratio(period, rt_r) > left {
            let parent = std::path::Path::new(&path).parent().map_or(String::from("/"), |p| p.display().to_string());
            let left_us = ((left * period as u128 + (1 << 19)) >> 20) as i64; // rounded to the µs
            return Err(SpecError::annotation(
                self.s.key("cpu-rt-runtime"),
                format!("cpu real-time runtime {rt_r} is more than the parent cgroup {parent} has left ({left_us}µs per {period}µs): the sum of all runtimes across containers cannot exceed the amount allotted to the parent cgroup (Docker's daemon sets it with --cpu-rt-runtime)"),
            ));
        }
        Ok(())
    }

    /// Write the plan, merged into the existing object (CG-9).
    fn emit(&mut self, plan: Plan) -> Result<(), SpecError> {
        let res = self.doc.resources_mut()?;
        let mut changes: Vec<String> = Vec::new();
        let set = |m: &mut Map<String, Value>, k: &str, v: Value, changes: &mut Vec<String>| {
            if m.get(k) != Some(&v) {
                changes.push(format!("{k}={v}"));
                m.insert(k.into(), v);
            }
        };
        if let Some(p) = plan.memory {
            let m = match res.entry(key::MEMORY).or_insert_with(|| Value::Object(Map::new())) {
                Value::Object(m) => m,
                other => {
                    *other = Value::Object(Map::new());
                    other.as_object_mut().ok_or_else(|| SpecError::spec("linux.resources.memory", "expected an object"))?
                }
            };
            for (k, v) in [(key::LIMIT, p.limit), (key::RESERVATION, p.reservation), (key::SWAP, p.swap), (key::SWAPPINESS, p.swappiness)] {
                if let Some(v) = v {
                    set(m, k, v.into(), &mut changes);
                }
            }
            if let Some(d) = p.oom_kill_disable {
                set(m, key::DISABLE_OOM_KILLER, d.into(), &mut changes);
            } else if p.oom_kill_disable_default && !m.contains_key(key::DISABLE_OOM_KILLER) {
                set(m, key::DISABLE_OOM_KILLER, false.into(), &mut changes);
            }
            if m.is_empty() {
                res.remove(key::MEMORY);
            }
        }
        let mut shares_dropped = false;
        if plan.drop_ctr_shares {
            if let Some(Value::Object(c)) = res.get_mut(key::CPU) {
                if c.get(key::SHARES).and_then(Value::as_i64) == Some(CTR_DEFAULT_SHARES) {
                    c.remove(key::SHARES);
                    shares_dropped = true;
                    if c.is_empty() {
                        res.remove(key::CPU);
                    }
                }
            }
        }
        if let Some(p) = plan.cpu {
            let c = obj_in(res, key::CPU, "linux.resources.cpu")?;
            if let Some((period, quota)) = p.nano {
                set(c, key::PERIOD, period.into(), &mut changes);
                set(c, key::QUOTA, quota.into(), &mut changes);
            }
            let ints = [(key::SHARES, p.shares)];
            for (k, v) in ints {
                if let Some(v) = v {
                    set(c, k, v.into(), &mut changes);
                }
            }
            for (k, v) in [(key::CPUS, p.cpus), (key::MEMS, p.mems)] {
                if let Some(v) = v {
                    set(c, k, v.into(), &mut changes);
                }
            }
            for (k, v) in [(key::PERIOD, p.period), (key::QUOTA, p.quota), (key::REALTIME_PERIOD, p.rt_period), (key::REALTIME_RUNTIME, p.rt_runtime)] {
                if let Some(v) = v {
                    set(c, k, v.into(), &mut changes);
                }
            }
        }
        match plan.pids {
            Some(Some(p)) => {
                let pm = obj_in(res, key::PIDS, "linux.resources.pids")?;
                set(pm, key::LIMIT, p.into(), &mut changes);
            }
            Some(None) => {
                if res.remove(key::PIDS).is_some() {
                    changes.push("pids removed".into());
                }
            }
            None => {}
        }
        if let Some(w) = plan.block_io {
            let b = obj_in(res, key::BLOCK_IO, "linux.resources.blockIO")?;
            if let Some(w) = w {
                set(b, key::WEIGHT, w.into(), &mut changes);
            }
        }
        if shares_dropped {
            self.note("CG-5", "cpu.shares 1024 removed (ctr's default; Docker sets none)");
        }
        for d in plan.discarded {
            self.note("CG-7", d);
        }
        if !changes.is_empty() {
            self.note("CG-4", format!("resources {}", changes.join(", ")));
        }
        Ok(())
    }
}
