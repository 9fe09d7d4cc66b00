//! A running child on Windows: its process handle and the job object that holds its tree.
//!
//! The exit status comes from the process handle (`GetExitCodeProcess`), never from job
//! messages, which are only hints (their delivery is not guaranteed, and under Wine a child
//! killed with its job reports exit code 0 in them). `TerminateJobObject` kills the child and
//! every descendant that did not escape the job, for timeouts, cancellation and leaked pipes;
//! the job is also `KILL_ON_JOB_CLOSE`, so if herd itself dies, the tree dies with it.

use super::super::{ExitInfo, Kill};
use std::os::windows::io::{AsRawHandle, OwnedHandle};
use std::time::Duration;
use windows_sys::Win32::Foundation::{FILETIME, HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::System::JobObjects::TerminateJobObject;
use windows_sys::Win32::System::ProcessStatus::{K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS};
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, GetProcessTimes, WaitForSingleObject,
};

/// The exit code a job's processes get when herd terminates it.
const KILLED_EXIT_CODE: u32 = 1;

pub(crate) struct Process {
    pid: u32,
    handle: OwnedHandle,
    job: OwnedHandle,
    reaped: bool,
}

impl Process {
    pub(super) fn new(pid: u32, handle: OwnedHandle, job: OwnedHandle) -> Self {
        Process {
            pid,
            handle,
            job,
            reaped: false,
        }
    }

    pub(crate) fn id(&self) -> u32 {
        self.pid
    }

    pub(super) fn raw_handle(&self) -> HANDLE {
        self.handle.as_raw_handle() as HANDLE
    }

    pub(super) fn raw_job(&self) -> HANDLE {
        self.job.as_raw_handle() as HANDLE
    }

    pub(crate) fn has_exited(&self) -> bool {
        // SAFETY: a valid process handle; a zero timeout never blocks.
        unsafe { WaitForSingleObject(self.raw_handle(), 0) == WAIT_OBJECT_0 }
    }

    /// Windows has no job control: nothing stops a job for the terminal.
    pub(crate) fn stopped_for_terminal(&self) -> bool {
        false
    }

    /// Terminates the whole job. Windows has no polite equivalent of SIGTERM for console
    /// programs in a new process group that herd could rely on, so both kinds kill.
    pub(crate) fn signal_tree(&self, _kill: Kill) {
        // SAFETY: a valid job handle.
        unsafe { TerminateJobObject(self.raw_job(), KILLED_EXIT_CODE) };
    }

    pub(crate) fn reap(mut self) -> ExitInfo {
        self.reaped = true;
        let handle = self.raw_handle();
        let mut code = 0u32;
        // SAFETY: valid handle and out-pointer.
        let have_code = unsafe { GetExitCodeProcess(handle, &mut code) } != 0;
        let zero = FILETIME {
            dwLowDateTime: 0,
            dwHighDateTime: 0,
        };
        let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
        // SAFETY: valid handle and out-pointers.
        let have_times =
            unsafe { GetProcessTimes(handle, &mut created, &mut exited, &mut kernel, &mut user) }
                != 0;
        let ft = |t: FILETIME| {
            let ticks = (u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime);
            Duration::from_nanos(ticks.saturating_mul(100))
        };
        // SAFETY: an all-zero counters struct is valid; `cb` tells its size.
        let mut memory: PROCESS_MEMORY_COUNTERS = unsafe { std::mem::zeroed() };
        memory.cb = std::mem::size_of::<PROCESS_MEMORY_COUNTERS>() as u32;
        // SAFETY: valid handle, struct and size.
        let have_memory = unsafe { K32GetProcessMemoryInfo(handle, &mut memory, memory.cb) } != 0;
        ExitInfo {
            spawn_error: None,
            code: have_code.then_some(code as i32),
            signal: None,
            user_time: if have_times { ft(user) } else { Duration::ZERO },
            system_time: if have_times {
                ft(kernel)
            } else {
                Duration::ZERO
            },
            max_rss_kb: if have_memory {
                memory.PeakWorkingSetSize as u64 / 1024
            } else {
                0
            },
        }
    }
}

impl Drop for Process {
    /// A child herd gives up on (a failed registration, shutdown) dies with its whole tree.
    fn drop(&mut self) {
        if !self.reaped {
            self.signal_tree(Kill::Kill);
        }
    }
}
