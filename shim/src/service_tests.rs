//! The service over a stub runtime and a recording event sink (the way runwasi tests its
//! `Local<T, E>`): transitions, the order of events, a hung exec that must not block Kill or
//! State, and the init-exit invariants. Exits are delivered as the reaper would.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use containerd_shim_protos::api::{CreateTaskRequest, ExecProcessRequest};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use tokio::sync::{mpsc, Notify};

use crate::container::TaskError;
use crate::events::Event;
use crate::monitor::Exit;
use crate::process::State;
use crate::runtime::{CreateRequest, Created, EventSink, ExecRequest, Launched, Runtime, RuntimeError};
use crate::service::Service;
use crate::stdio::ProcessIo;

/// Exec ids starting with these make the stub behave: `hang…` blocks in `runc exec` until
/// released (then fails, as runc does when its container is killed); `quick…` exits before
/// `runc exec` returns. Container ids starting with `host…` share a PID namespace; `racy…`
/// exits while Start runs.
#[derive(Default)]
struct Stub {
    next_pid: AtomicU32,
    calls: Mutex<Vec<String>>,
    release: Notify,
    oom: AtomicBool,
    reaper: Mutex<Option<mpsc::UnboundedSender<Exit>>>,
}

struct StubHandle {
    id: String,
    pid: u32,
}

impl Stub {
    fn call(&self, c: String) {
        self.calls.lock().unwrap().push(c);
    }
    fn pid(&self) -> u32 {
        1000 + self.next_pid.fetch_add(1, Ordering::SeqCst)
    }
    /// An exit as the reaper would report it, through the service's exit loop.
    async fn reap(&self, pid: u32, status: u32) {
        let tx = self.reaper.lock().unwrap().clone().expect("exit loop");
        tx.send(Exit { pid: pid as i32, status, at: SystemTime::now() }).unwrap();
        // Let the exit loop route it now.
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
    }
}

#[async_trait]
impl Runtime for Arc<Stub> {
    type Handle = StubHandle;

    async fn create(&self, req: CreateRequest) -> Result<Created<StubHandle>, RuntimeError> {
        if req.id.starts_with("bad") {
            return Err(RuntimeError::InvalidArgument("bad spec".into()));
        }
        let pid = self.pid();
        self.call(format!("create {}", req.id));
        Ok(Created { handle: StubHandle { id: req.id.clone(), pid }, pid, io: ProcessIo::default(), kill_all_on_exit: req.id.starts_with("host") })
    }
    async fn start(&self, h: &StubHandle, _alive: &(dyn Fn() -> bool + Send + Sync)) -> Result<(), RuntimeError> {
        self.call(format!("start {}", h.id));
        if h.id.starts_with("racy") {
            self.reap(h.pid, 0).await;
        }
        Ok(())
    }
    async fn exec(&self, h: &StubHandle, req: ExecRequest) -> Result<Launched, RuntimeError> {
        self.call(format!("exec {} {}", h.id, req.exec_id));
        if req.exec_id.starts_with("hang") {
            self.release.notified().await;
            return Err(RuntimeError::Failed("runc exec failed: container killed".into()));
        }
        let pid = self.pid();
        if req.exec_id.starts_with("quick") {
            self.reap(pid, 7).await;
        }
        Ok(Launched { pid, io: ProcessIo::default() })
    }
    async fn kill(&self, h: &StubHandle, signal: u32, all: bool) -> Result<(), RuntimeError> {
        self.call(format!("kill {} {signal}{}", h.id, if all { " all" } else { "" }));
        Ok(())
    }
    async fn pause(&self, h: &StubHandle) -> Result<(), RuntimeError> {
        self.call(format!("pause {}", h.id));
        Ok(())
    }
    async fn resume(&self, h: &StubHandle) -> Result<(), RuntimeError> {
        self.call(format!("resume {}", h.id));
        Ok(())
    }
    async fn pids(&self, h: &StubHandle) -> Result<Vec<u32>, RuntimeError> {
        Ok(vec![h.pid])
    }
    async fn update(&self, _h: &StubHandle, _r: Vec<u8>) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn delete(&self, h: &StubHandle, force: bool) -> Result<(), RuntimeError> {
        self.call(format!("delete {}{}", h.id, if force { " force" } else { "" }));
        Ok(())
    }
    async fn stats(&self, _h: &StubHandle) -> Result<Any, RuntimeError> {
        Ok(Any::default())
    }
    async fn oom_notified(&self, _h: &StubHandle) -> bool {
        false
    }
    fn take_oom(&self, _h: &StubHandle) -> bool {
        self.oom.swap(false, Ordering::SeqCst)
    }
    fn prepare_exec(&self, _h: &StubHandle, process: &[u8], _terminal: bool) -> Result<Vec<u8>, RuntimeError> {
        Ok(process.to_vec())
    }
}

#[derive(Default, Clone)]
struct Sink(Arc<Mutex<Vec<Event>>>);

impl EventSink for Sink {
    fn publish(&self, e: Event) {
        self.0.lock().unwrap().push(e);
    }
}

impl Sink {
    /// "topic id" per event (exit: the process id; others: the exec id or container id).
    fn log(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|e| {
                let who = match e {
                    Event::Exit(x) => x.id.clone(),
                    Event::ExecAdded(x) => x.exec_id.clone(),
                    Event::ExecStarted(x) => x.exec_id.clone(),
                    Event::Create(x) => x.container_id.clone(),
                    Event::Start(x) => x.container_id.clone(),
                    Event::Delete(x) => x.container_id.clone(),
                    Event::Oom(x) => x.container_id.clone(),
                    Event::Paused(x) => x.container_id.clone(),
                    Event::Resumed(x) => x.container_id.clone(),
                };
                format!("{} {who}", e.topic())
            })
            .collect()
    }
}

struct Fixture {
    stub: Arc<Stub>,
    sink: Sink,
    svc: Arc<Service<Arc<Stub>, Sink>>,
}

fn fixture() -> Fixture {
    let stub = Arc::new(Stub::default());
    let sink = Sink::default();
    let svc = Service::new(stub.clone(), sink.clone(), None);
    let (tx, rx) = mpsc::unbounded_channel();
    *stub.reaper.lock().unwrap() = Some(tx);
    tokio::spawn(svc.clone().handle_exits(rx));
    Fixture { stub, sink, svc }
}

impl Fixture {
    async fn run(&self, id: &str) -> u32 {
        let req = CreateTaskRequest { id: id.into(), bundle: format!("/b/{id}"), ..Default::default() };
        self.svc.create(&req).await.unwrap();
        self.svc.get(id).unwrap().start("").await.unwrap()
    }
    fn add_exec(&self, id: &str, exec_id: &str) {
        let req = ExecProcessRequest { id: id.into(), exec_id: exec_id.into(), ..Default::default() };
        self.svc.exec(&req).unwrap();
    }
    async fn start_exec(&self, id: &str, exec_id: &str) -> u32 {
        self.add_exec(id, exec_id);
        self.svc.get(id).unwrap().start(exec_id).await.unwrap()
    }
    fn state(&self, id: &str, exec_id: &str) -> State {
        self.svc.get(id).unwrap().snapshot(exec_id).unwrap().state
    }
    /// Lets spawned publications run.
    async fn settle(&self) {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test]
async fn invalid_transitions_are_errors() {
    let f = fixture();
    let req = CreateTaskRequest { id: "c".into(), bundle: "/b/c".into(), ..Default::default() };
    f.svc.create(&req).await.unwrap();
    assert!(matches!(f.svc.create(&req).await, Err(TaskError::AlreadyExists(_))));
    let c = f.svc.get("c").unwrap();
    assert!(matches!(c.pause().await, Err(TaskError::FailedPrecondition(_))), "pause before start");
    c.start("").await.unwrap();
    assert!(matches!(c.start("").await, Err(TaskError::FailedPrecondition(_))), "second start");
    assert!(matches!(c.resume().await, Err(TaskError::FailedPrecondition(_))), "resume while running");
    assert!(matches!(c.delete().await, Err(TaskError::FailedPrecondition(_))), "delete while running");
    f.add_exec("c", "e");
    assert!(matches!(f.svc.exec(&ExecProcessRequest { id: "c".into(), exec_id: "e".into(), ..Default::default() }), Err(TaskError::AlreadyExists(_))));
    assert!(matches!(c.kill("e", 9, false).await, Err(TaskError::FailedPrecondition(_))), "kill of an exec not started");
    assert!(matches!(c.kill("", 999, false).await, Err(TaskError::InvalidArgument(_))));
    assert!(matches!(f.svc.get("nope"), Err(TaskError::NotFound(_))));
    assert!(matches!(f.svc.create(&CreateTaskRequest { id: "../x".into(), ..Default::default() }).await, Err(TaskError::InvalidArgument(_))));
    let bad_stdio = CreateTaskRequest { id: "s".into(), stdout: "".into(), stderr: "binary:///bin/true".into(), ..Default::default() };
    assert!(matches!(f.svc.create(&bad_stdio).await, Err(TaskError::InvalidArgument(m)) if m.contains("stderr")));
    assert!(matches!(f.svc.create(&CreateTaskRequest { id: "bad1".into(), ..Default::default() }).await, Err(TaskError::InvalidArgument(_))));
    assert!(f.svc.get("bad1").is_err(), "a failed create leaves no entry");
    c.pause().await.unwrap();
    c.resume().await.unwrap();
    assert_eq!(f.sink.log()[..], ["/tasks/create c", "/tasks/start c", "/tasks/exec-added e", "/tasks/paused c", "/tasks/resumed c"]);
}

#[tokio::test]
async fn kill_and_state_answer_while_an_exec_start_hangs() {
    let f = fixture();
    let init = f.run("c").await;
    f.add_exec("c", "hang1");
    let c = f.svc.get("c").unwrap();
    let hung = tokio::spawn(async move { c.start("hang1").await });
    f.settle().await;
    assert!(!hung.is_finished());
    assert_eq!(f.state("c", "hang1"), State::Starting { pid: 0, exec: true, exit: None });
    assert_eq!(f.state("c", ""), State::Running { pid: init });
    tokio::time::timeout(Duration::from_secs(1), f.svc.get("c").unwrap().kill("", 9, false)).await.expect("Kill waited for the exec").unwrap();
    // The container dies; the init's exit waits for the exec that is still starting.
    f.stub.reap(init, 137).await;
    f.settle().await;
    assert!(!f.sink.log().iter().any(|e| e == "/tasks/exit c"), "init exit published before its exec ended: {:?}", f.sink.log());
    f.stub.release.notify_one();
    assert!(matches!(hung.await.unwrap(), Err(TaskError::Unknown(_))));
    f.settle().await;
    assert_eq!(f.sink.log().last().map(String::as_str), Some("/tasks/exit c"));
    assert_eq!(f.state("c", "hang1").stopped().map(|e| e.status), Some(crate::process::START_FAILED));
    assert_eq!(f.svc.get("c").unwrap().wait("hang1").await.unwrap().status, crate::process::START_FAILED);
    f.svc.delete("c", "").await.unwrap();
    assert!(f.stub.calls.lock().unwrap().contains(&"kill c 9".to_string()));
}

#[tokio::test]
async fn init_exit_is_published_after_its_execs_exits() {
    let f = fixture();
    let init = f.run("c").await;
    let e1 = f.start_exec("c", "e1").await;
    let e2 = f.start_exec("c", "e2").await;
    f.stub.reap(init, 137).await;
    f.settle().await;
    assert!(!f.sink.log().iter().any(|e| e.starts_with("/tasks/exit")), "{:?}", f.sink.log());
    assert_eq!(f.state("c", "").status(), containerd_shim_protos::types::task::Status::RUNNING, "running until its exit is published");
    assert!(matches!(f.svc.get("c").unwrap().add_exec("e3", crate::stdio::StdioSpec::parse(Default::default()).unwrap(), b"{}"), Err(TaskError::FailedPrecondition(_))), "no exec once the init exited");
    f.stub.reap(e2, 137).await;
    f.stub.reap(e1, 0).await;
    f.settle().await;
    let exits: Vec<String> = f.sink.log().into_iter().filter(|e| e.starts_with("/tasks/exit")).collect();
    assert_eq!(exits, ["/tasks/exit e2", "/tasks/exit e1", "/tasks/exit c"]);
    assert!(!f.stub.calls.lock().unwrap().iter().any(|c| c.ends_with(" all")), "own PID namespace: no kill --all");
    assert_eq!(f.svc.get("c").unwrap().wait("").await.unwrap().status, 137);
    let d = f.svc.delete("c", "").await.unwrap();
    assert_eq!((d.pid, d.exit_status), (init, 137));
    assert_eq!(f.sink.log().last().map(String::as_str), Some("/tasks/delete c"), "TaskDelete after TaskExit");
    assert!(f.svc.is_empty());
}

#[tokio::test]
async fn init_exit_without_own_pid_namespace_kills_all() {
    let f = fixture();
    let init = f.run("host1").await;
    f.start_exec("host1", "e1").await;
    f.stub.reap(init, 0).await;
    f.settle().await;
    assert!(f.stub.calls.lock().unwrap().contains(&"kill host1 9 all".to_string()), "{:?}", f.stub.calls.lock().unwrap());
}

#[tokio::test]
async fn oom_is_published_before_the_exit() {
    let f = fixture();
    let init = f.run("c").await;
    f.stub.oom.store(true, Ordering::SeqCst);
    f.stub.reap(init, 137).await;
    f.settle().await;
    assert_eq!(f.sink.log()[2..], ["/tasks/oom c", "/tasks/exit c"]);
}

#[tokio::test]
async fn exits_that_race_their_start_come_after_the_start_event() {
    let f = fixture();
    f.run("c").await;
    let pid = f.start_exec("c", "quick1").await;
    f.settle().await;
    let c = f.svc.get("c").unwrap();
    assert_eq!(c.wait("quick1").await.unwrap().status, 7);
    assert_eq!(f.state("c", "quick1").stopped().map(|e| e.pid), Some(pid));
    f.run("racy1").await;
    f.settle().await;
    let log = f.sink.log();
    let pos = |s: &str| log.iter().position(|e| e == s).unwrap_or_else(|| panic!("{s} missing: {log:?}"));
    assert!(pos("/tasks/exec-started quick1") < pos("/tasks/exit quick1"), "{log:?}");
    assert!(pos("/tasks/start racy1") < pos("/tasks/exit racy1"), "{log:?}");
    assert!(matches!(c.kill("quick1", 9, false).await, Err(TaskError::NotFound(_))), "kill of a finished exec");
    let d = c.delete_exec("quick1").unwrap().unwrap();
    assert_eq!(d.status, 7);
}

#[tokio::test]
async fn created_container_is_force_deleted_as_killed() {
    let f = fixture();
    f.svc.create(&CreateTaskRequest { id: "c".into(), ..Default::default() }).await.unwrap();
    let d = f.svc.delete("c", "").await.unwrap();
    assert_eq!(d.exit_status, crate::process::KILLED);
    assert!(f.stub.calls.lock().unwrap().contains(&"delete c force".to_string()));
    assert_eq!(f.sink.log()[..], ["/tasks/create c", "/tasks/delete c"]);
}

/// ttrpc drops a request's future at its deadline or when the client goes away: the operation
/// must still complete, never leaving a process "starting" or a Create half done.
#[tokio::test]
async fn operations_finish_when_the_request_is_dropped() {
    use containerd_shim_protos::api::StartRequest;
    use containerd_shim_protos::shim_async::Task;
    let f = fixture();
    f.run("c").await;
    f.add_exec("c", "hang1");
    let ctx = ttrpc::r#async::TtrpcContext::default();
    let req = StartRequest { id: "c".into(), exec_id: "hang1".into(), ..Default::default() };
    let dropped = tokio::time::timeout(Duration::from_millis(50), Task::start(&*f.svc, &ctx, req)).await;
    assert!(dropped.is_err(), "the start was expected to hang");
    f.stub.release.notify_one();
    f.settle().await;
    assert_eq!(f.state("c", "hang1").stopped().map(|e| e.status), Some(crate::process::START_FAILED), "the dropped start did not finish");
}
