//! `ctr events` captured in the background.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::{run_cmd, Containerd, Runtime, Version};

/// One line of `ctr events`: `<timestamp> <namespace> <topic> <json>`.
#[derive(Debug, Clone)]
pub struct Event {
    pub namespace: String,
    pub topic: String,
    pub json: serde_json::Value,
    pub raw: String,
}

impl Event {
    fn parse(line: &str) -> Option<Event> {
        // Timestamp as printed by Go: "2026-01-02 15:04:05.999999999 +0000 UTC".
        let mut rest = line;
        for _ in 0..4 {
            rest = rest.trim_start().split_once(' ')?.1;
        }
        let (ns, rest) = rest.trim_start().split_once(' ')?;
        let (topic, json) = match rest.split_once(' ') {
            Some((t, j)) => (t, j),
            None => (rest, ""),
        };
        Some(Event {
            namespace: ns.to_string(),
            topic: topic.to_string(),
            json: serde_json::from_str(json.trim()).unwrap_or(serde_json::Value::Null),
            raw: line.to_string(),
        })
    }

    /// A string field of the event body ("container_id", "exec_id", "id"…); "" if absent.
    pub fn str(&self, key: &str) -> &str {
        self.json.get(key).and_then(|v| v.as_str()).unwrap_or("")
    }

    /// A numeric field; 0 when absent (Go omits zero values).
    pub fn num(&self, key: &str) -> u64 {
        self.json.get(key).and_then(|v| v.as_u64()).unwrap_or(0)
    }

    /// The container the event is about.
    pub fn container(&self) -> &str {
        match self.str("container_id") {
            "" => self.str("id"),
            c => c,
        }
    }
}

type Shared = Arc<(Mutex<Vec<Event>>, Condvar)>;

/// A running `ctr events`; every event is kept in order.
pub struct Events {
    child: Child,
    buf: Shared,
    ns: String,
}

impl Events {
    /// Subscribes to all events of `c` and returns once the subscription is live; events of
    /// namespace `ns` are those the helpers below look at.
    pub fn watch(c: &Containerd, ns: &str) -> Events {
        Self::watch_address(&c.grpc, ns)
    }

    /// [`Events::watch`] for any containerd reachable at `grpc_address` (e.g. one inside the
    /// systemd environment, [`crate::systemd_env`]).
    pub fn watch_address(grpc_address: &str, ns: &str) -> Events {
        let ctr = || {
            let mut c = Command::new("ctr");
            c.args(["--address", grpc_address]);
            c
        };
        let mut child = ctr()
            .arg("events")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ctr events");
        let buf: Shared = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let out = child.stdout.take().unwrap();
        let b = buf.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(e) = Event::parse(&line) {
                    let (m, cv) = &*b;
                    m.lock().unwrap().push(e);
                    cv.notify_all();
                }
            }
        });
        let ev = Events { child, buf, ns: ns.to_string() };
        // The subscription is asynchronous: poke the namespace until its update event shows up.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut n = 0;
        loop {
            n += 1;
            let label = format!("dockerish.sync={n}");
            run_cmd(ctr().args(["namespaces", "label", ns, &label]), None, crate::containerd::CTR_TIMEOUT);
            if ev
                .wait_for(Duration::from_millis(300), |e| e.topic == "/namespaces/update" && e.raw.contains(&format!("\"{n}\"")))
                .is_some()
            {
                return ev;
            }
            assert!(Instant::now() < deadline, "ctr events did not receive events within 20 s");
        }
    }

    /// All events of the watched namespace so far, in order.
    pub fn all(&self) -> Vec<Event> {
        self.buf.0.lock().unwrap().iter().filter(|e| e.namespace == self.ns).cloned().collect()
    }

    /// Events of the watched namespace about container `id` whose topic starts with `/tasks/`.
    pub fn task_events(&self, id: &str) -> Vec<Event> {
        self.all().into_iter().filter(|e| e.topic.starts_with("/tasks/") && e.container() == id).collect()
    }

    /// Topics of [`Events::task_events`].
    pub fn task_topics(&self, id: &str) -> Vec<String> {
        self.task_events(id).into_iter().map(|e| e.topic).collect()
    }

    /// Waits for the first event (any namespace) matching `pred`, including past ones.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Event) -> bool) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.buf;
        let mut g = m.lock().unwrap();
        loop {
            if let Some(e) = g.iter().find(|e| pred(e)) {
                return Some(e.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Waits for `topic` about container `id` in the watched namespace; panics with the events
    /// seen so far after `timeout`.
    #[track_caller]
    pub fn expect(&self, topic: &str, id: &str, timeout: Duration) -> Event {
        let ns = self.ns.clone();
        match self.wait_for(timeout, |e| e.namespace == ns && e.topic == topic && e.container() == id) {
            Some(e) => e,
            None => panic!(
                "no {topic} event for {id} within {timeout:?}; events for it: {:?}",
                self.task_topics(id)
            ),
        }
    }

    /// Waits for the `/tasks/delete` of `id` after its task was deleted, as [`Events::expect`].
    /// Except from the Go shim of containerd 2.x, which now and then never sends it when the
    /// machine is busy (it exits on Shutdown before publishing; measured under 2.3.4: 1 of 12
    /// parallel deletes, ours 0 of 12): for that reference only the event is optional, and
    /// `None` says it did not come.
    #[track_caller]
    pub fn expect_task_delete(&self, v: Version, rt: Runtime, id: &str, timeout: Duration) -> Option<Event> {
        if rt == Runtime::RuncV2 && v.is_2x() {
            let ns = self.ns.clone();
            return self.wait_for(timeout, |e| e.namespace == ns && e.topic == "/tasks/delete" && e.container() == id);
        }
        Some(self.expect("/tasks/delete", id, timeout))
    }

    /// Waits for an event matching `pred` in the watched namespace; panics after `timeout`.
    #[track_caller]
    pub fn expect_match(&self, what: &str, timeout: Duration, pred: impl Fn(&Event) -> bool) -> Event {
        let ns = self.ns.clone();
        match self.wait_for(timeout, |e| e.namespace == ns && pred(e)) {
            Some(e) => e,
            None => panic!(
                "no event {what} within {timeout:?}; events: {:#?}",
                self.all().iter().map(|e| &e.raw).collect::<Vec<_>>()
            ),
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::Event;

    #[test]
    fn parses_ctr_events_lines() {
        let e = Event::parse(r#"2026-11-23 17:10:01.314390284 +0000 UTC t1-2 /tasks/exit {"container_id":"a","id":"a","pid":12,"exit_status":137,"exited_at":"2026-11-23T17:10:01Z"}"#).unwrap();
        assert_eq!((e.namespace.as_str(), e.topic.as_str(), e.container()), ("t1-2", "/tasks/exit", "a"));
        assert_eq!((e.num("pid"), e.num("exit_status")), (12, 137));
        let e = Event::parse(r#"2026-11-23 17:10:01.3 +0000 UTC t1-2 /tasks/exit {"container_id":"a","id":"a","pid":12}"#).unwrap();
        assert_eq!(e.num("exit_status"), 0, "Go omits zero values");
        let e = Event::parse(r#"2026-11-23 17:10:01.3 +0000 UTC t1-2 /tasks/exec-added {"container_id":"a","exec_id":"e1"}"#).unwrap();
        assert_eq!((e.container(), e.str("exec_id")), ("a", "e1"));
    }
}
