//! containerd-shim-dockerish-v2: a containerd shim v2 that runs containers through runc after
//! filling their OCI spec with the rules `docker run` applies.
//!
//! Layers, top down (docs/ARCHITECTURE.md has the picture):
//! - [`bootstrap`]: the short-lived invocations (`start`, `delete`, `-info`, `-v`), [`dry_run`],
//!   [`install`] (`install`/`uninstall` on a node);
//! - [`daemon`]: the long-lived process; [`service`]: the task API over ttrpc and the registry;
//! - [`container`]: one container and the invariants on its processes' exits;
//!   [`process`]: process states and their transitions;
//! - [`runtime`]: the seams the service is generic over; [`oci`]: the real runtime,
//!   [`runc`]: the only place runc starts, [`bundle`]: the bundle and the Create transaction;
//! - [`stdio`], [`monitor`] (the reaper), [`exits`] (pid routing), [`cgroup`], [`events`].

pub mod args;
pub mod bootstrap;
pub mod bundle;
pub mod cgroup;
pub mod container;
pub mod daemon;
pub mod dry_run;
pub mod events;
pub mod execfifo;
pub mod exits;
pub mod fsutil;
pub mod install;
pub mod logger;
pub mod monitor;
pub mod mount;
pub mod oci;
pub mod process;
pub mod rules;
pub mod runc;
pub mod runtime;
pub mod service;
pub mod stdio;

#[cfg(test)]
mod service_tests;
