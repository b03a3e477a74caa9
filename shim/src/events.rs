//! Publishes task events to containerd over ttrpc (`Events.Forward`), in order, surviving a
//! containerd restart (reconnect and retry), never blocking the task service.

use std::time::{Duration, SystemTime};

use containerd_shim_protos::events::task::*;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_async::EventsClient;
use tokio::sync::mpsc;

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32, ..Default::default() }
}

#[derive(Debug, Clone)]
pub enum Event {
    Create(TaskCreate),
    Start(TaskStart),
    Exit(TaskExit),
    Delete(TaskDelete),
    ExecAdded(TaskExecAdded),
    ExecStarted(TaskExecStarted),
    Paused(TaskPaused),
    Resumed(TaskResumed),
    Oom(TaskOOM),
}

impl Event {
    /// The event's topic (`/tasks/exit`, …).
    pub fn topic(&self) -> &'static str {
        self.names().0
    }

    /// Topic and protobuf type name. The names are written out instead of asked from the
    /// message's reflection descriptor: the first `descriptor()` call makes rust-protobuf build
    /// the descriptors of the whole events file and its imports, ~350 KiB of heap that every
    /// shim would keep for its lifetime (more than half of an idle shim's heap).
    fn names(&self) -> (&'static str, &'static str) {
        match self {
            Event::Create(_) => ("/tasks/create", "containerd.events.TaskCreate"),
            Event::Start(_) => ("/tasks/start", "containerd.events.TaskStart"),
            Event::Exit(_) => ("/tasks/exit", "containerd.events.TaskExit"),
            Event::Delete(_) => ("/tasks/delete", "containerd.events.TaskDelete"),
            Event::ExecAdded(_) => ("/tasks/exec-added", "containerd.events.TaskExecAdded"),
            Event::ExecStarted(_) => ("/tasks/exec-started", "containerd.events.TaskExecStarted"),
            Event::Paused(_) => ("/tasks/paused", "containerd.events.TaskPaused"),
            Event::Resumed(_) => ("/tasks/resumed", "containerd.events.TaskResumed"),
            Event::Oom(_) => ("/tasks/oom", "containerd.events.TaskOOM"),
        }
    }

    fn encode(&self) -> Result<Vec<u8>, containerd_shim_protos::protobuf::Error> {
        match self {
            Event::Create(e) => e.write_to_bytes(),
            Event::Start(e) => e.write_to_bytes(),
            Event::Exit(e) => e.write_to_bytes(),
            Event::Delete(e) => e.write_to_bytes(),
            Event::ExecAdded(e) => e.write_to_bytes(),
            Event::ExecStarted(e) => e.write_to_bytes(),
            Event::Paused(e) => e.write_to_bytes(),
            Event::Resumed(e) => e.write_to_bytes(),
            Event::Oom(e) => e.write_to_bytes(),
        }
    }

    fn topic_and_any(&self) -> (&'static str, Option<containerd_shim_protos::protobuf::well_known_types::any::Any>) {
        let (topic, type_url) = self.names();
        let any = self.encode().ok().map(|value| containerd_shim_protos::protobuf::well_known_types::any::Any { type_url: type_url.to_string(), value, ..Default::default() });
        (topic, any)
    }
}

#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::UnboundedSender<(SystemTime, Event)>,
    /// Events queued or in flight, so the daemon can drain them before it exits.
    pending: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Publisher {
    /// `address` is containerd's ttrpc socket (`TTRPC_ADDRESS`).
    pub fn start(address: String, namespace: String) -> Publisher {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(run(address, namespace, rx, pending.clone()));
        Publisher { tx, pending }
    }


    /// Waits (bounded) until every queued event was delivered or given up on.
    pub async fn drain(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.pending.load(std::sync::atomic::Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl crate::runtime::EventSink for Publisher {
    /// Queues the event (never blocks); events go out in the order they were published.
    fn publish(&self, e: Event) {
        self.pending.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.tx.send((SystemTime::now(), e)).is_err() {
            self.pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

async fn run(
    address: String,
    namespace: String,
    mut rx: mpsc::UnboundedReceiver<(SystemTime, Event)>,
    pending: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let addr = if address.contains("://") { address } else { format!("unix://{address}") };
    let mut client: Option<EventsClient> = None;
    while let Some((at, ev)) = rx.recv().await {
        let (topic, any) = ev.topic_and_any();
        let Some(any) = any else {
            pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            continue;
        };
        let req = ForwardRequest {
            envelope: Some(Envelope {
                timestamp: Some(timestamp(at)).into(),
                namespace: namespace.clone(),
                topic: topic.to_string(),
                event: Some(any).into(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        // containerd may be restarting: retry for up to ~2 minutes, reconnecting each time.
        let mut delay = Duration::from_millis(20);
        let mut sent = false;
        for _ in 0..60 {
            if client.is_none() {
                match ttrpc::r#async::Client::connect(&addr).await {
                    Ok(c) => client = Some(EventsClient::new(c)),
                    Err(e) => log::debug!("connect {addr}: {e:?}"),
                }
            }
            if let Some(c) = &client {
                match c.forward(ttrpc::context::with_timeout(5_000_000_000), &req).await {
                    Ok(_) => {
                        sent = true;
                        break;
                    }
                    Err(e) => {
                        log::debug!("forward {topic}: {e:?}");
                        client = None;
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        if !sent {
            log::error!("dropped event {topic}: containerd at {addr} did not accept it");
        }
        pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::MessageFull;

    /// The written-out type names are exactly what the descriptors say (and what containerd's
    /// typeurl registry expects), and the payload is the message.
    #[test]
    fn type_names_match_the_descriptors() {
        let all = [
            (Event::Create(TaskCreate { container_id: "c".into(), ..Default::default() }), TaskCreate::descriptor()),
            (Event::Start(TaskStart::default()), TaskStart::descriptor()),
            (Event::Exit(TaskExit { exit_status: 3, ..Default::default() }), TaskExit::descriptor()),
            (Event::Delete(TaskDelete::default()), TaskDelete::descriptor()),
            (Event::ExecAdded(TaskExecAdded::default()), TaskExecAdded::descriptor()),
            (Event::ExecStarted(TaskExecStarted::default()), TaskExecStarted::descriptor()),
            (Event::Paused(TaskPaused::default()), TaskPaused::descriptor()),
            (Event::Resumed(TaskResumed::default()), TaskResumed::descriptor()),
            (Event::Oom(TaskOOM::default()), TaskOOM::descriptor()),
        ];
        for (e, d) in all {
            let (_, any) = e.topic_and_any();
            let any = any.expect("encodes");
            assert_eq!(any.type_url, d.full_name(), "{}", e.topic());
            assert_eq!(any.value, e.encode().unwrap());
        }
        let (_, exit) = Event::Exit(TaskExit { exit_status: 3, ..Default::default() }).topic_and_any();
        assert_eq!(TaskExit::parse_from_bytes(&exit.unwrap().value).unwrap().exit_status, 3);
    }
}
