//! Start thousands of child processes at once and capture every byte of their stdout and
//! stderr, with a handful of threads.
//!
//! A [`Herd`] runs [`Job`]s. One event-loop thread owns every pipe and every exit
//! notification (epoll and pidfds on Linux), and on Linux also starts the processes, without
//! waiting for their exec; on Windows a small fixed pool of spawner threads creates them. No
//! thread per job or per pipe, ever: 10 or 10,000 running jobs cost the same
//! threads. Both streams of every child are drained from the instant it starts, so no child
//! ever blocks on a full pipe, and captured output lives in memory up to a bound and then in
//! private temporary files.
//!
//! Every job runs in its own process tree (a process group on Linux). A job is complete when
//! its process has exited and its pipes are closed, or, if a descendant keeps them open, when
//! a short grace after exit has passed; then what is left of the tree is killed. Timeouts and
//! cancellation kill the whole tree. No child outlives its herd.
//!
//! # Collect results
//!
//! ```
//! use herd_engine::{Herd, Job};
//!
//! # fn main() -> Result<(), herd_engine::Error> {
//! let herd = Herd::builder().max_running(50).build()?;
//! let handles: Vec<_> = (0..100)
//!     .map(|i| herd.spawn(Job::shell(format!("echo job {i}"))))
//!     .collect::<Result<_, _>>()?;
//! for (i, handle) in handles.into_iter().enumerate() {
//!     let result = handle.wait();
//!     assert!(result.success());
//!     assert_eq!(result.stdout.text()?.trim_end(), format!("job {i}"));
//! }
//! # Ok(()) }
//! ```
//!
//! [`Job::shell`] runs a command line with the system's shell (`sh` on Unix, `cmd` on
//! Windows); [`Job::new`] runs a program with arguments, no shell involved.
//!
//! # Follow events
//!
//! Jobs given to [`Herd::submit`] report to one event stream: started, output chunks (for jobs
//! with [`Job::stream_output`]), finished.
//!
//! ```
//! use herd_engine::{Event, Herd, Job, Stream};
//!
//! # fn main() -> Result<(), herd_engine::Error> {
//! let herd = Herd::new()?;
//! for word in ["alpha", "beta", "gamma"] {
//!     herd.submit(Job::shell(format!("echo {word}&& echo oops>&2")).stream_output(true))?;
//! }
//! let mut finished = 0;
//! for event in herd.events() {
//!     match event {
//!         Event::Started { id, pid, .. } => println!("job {id} is pid {pid}"),
//!         Event::Output { id, stream: Stream::Stdout, data, .. } => print!("{id}: {}", String::from_utf8_lossy(&data)),
//!         Event::Output { .. } => {}
//!         Event::Finished(result) => {
//!             assert!(result.success());
//!             assert_eq!(result.stderr.text()?.trim_end(), "oops");
//!             finished += 1;
//!         }
//!     }
//! }
//! assert_eq!(finished, 3);
//! # Ok(()) }
//! ```
//!
//! # Async
//!
//! A [`JobHandle`] is a [`Future`](std::future::Future) that works with any executor; herd
//! does not depend on one.
//!
//! ```
//! # fn main() -> Result<(), herd_engine::Error> {
//! let herd = herd_engine::Herd::new()?;
//! let job = herd.spawn(herd_engine::Job::shell("exit 0"))?;
//! # let block_on = |f| { let r: herd_engine::JobResult = futures_lite_block_on(f); r };
//! # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     // A minimal executor: poll, park until woken.
//! #     use std::task::{Context, Poll, Wake, Waker}; use std::sync::Arc;
//! #     struct T(std::thread::Thread);
//! #     impl Wake for T { fn wake(self: Arc<Self>) { self.0.unpark() } }
//! #     let waker = Waker::from(Arc::new(T(std::thread::current())));
//! #     let mut f = std::pin::pin!(f);
//! #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) { return v } std::thread::park() }
//! # }
//! let result = block_on(job); // or `job.await` inside async code
//! assert!(result.success());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

// The READMEs' Rust examples run as doctests, so they cannot rot. (The workspace README lies
// outside the published package; doctests are never built from the package.)
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct CrateReadme;
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct WorkspaceReadme;

mod chunk;
mod engine;
mod error;
mod feed;
mod herd;
mod job;
mod output;
mod result;
mod spawner;
mod stream;
mod sys;

pub use crate::chunk::Chunk;
pub use crate::error::{Error, SpawnError};
pub use crate::herd::{Builder, Containment, Herd, JobHandle, KeepOpen, NextEvent, SubmitAsync};
pub use crate::job::{Environment, Job, Stdin};
pub use crate::output::{Captured, Cut};
pub use crate::result::{signal_name, Event, JobId, JobResult, Outcome, ResourceUsage};
pub use crate::stream::{StdinSender, StdinStream, TrySendError};
pub use crate::sys::Stream;
