//! Named pipes with an overlapped end for herd and a synchronous end for the child.
//!
//! Anonymous pipes (`CreatePipe`) cannot do overlapped I/O, so each stream is a named pipe
//! with a unique name: herd's process id, a counter, and random bits. `FILE_FLAG_FIRST_PIPE_INSTANCE`
//! and a single instance make a collision (or a squatter) fail instead of connecting to the
//! wrong pipe; `PIPE_REJECT_REMOTE_CLIENTS` keeps it local. A collision is retried with a new
//! name. The child's end is opened without `FILE_FLAG_OVERLAPPED` (children assume synchronous
//! standard handles: rust#38811, rust#98947) and not inheritable: only a duplicate made just
//! for `CreateProcessW` is.

use super::wide;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::windows::io::{FromRawHandle, OwnedHandle};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use windows_sys::Win32::Foundation::{
    GetLastError, ERROR_ACCESS_DENIED, ERROR_PIPE_BUSY, GENERIC_READ, GENERIC_WRITE,
    INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, OPEN_EXISTING,
    PIPE_ACCESS_INBOUND, PIPE_ACCESS_OUTBOUND,
};
use windows_sys::Win32::System::Pipes::{
    CreateNamedPipeW, PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE, PIPE_WAIT,
};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Which way the bytes flow, seen from herd.
#[derive(Clone, Copy)]
pub(crate) enum Direction {
    /// The child writes (stdout, stderr); herd reads.
    FromChild,
    /// herd writes (stdin); the child reads.
    ToChild,
}

/// Creates a pipe: (herd's overlapped server end, the child's synchronous client end).
pub(crate) fn create(direction: Direction) -> io::Result<(OwnedHandle, OwnedHandle)> {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let (access, client_access) = match direction {
        Direction::FromChild => (PIPE_ACCESS_INBOUND, GENERIC_WRITE),
        Direction::ToChild => (PIPE_ACCESS_OUTBOUND, GENERIC_READ),
    };
    for attempt in 0..16u64 {
        let name = format!(
            r"\\.\pipe\herd-{}-{}-{:016x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            random.wrapping_add(attempt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        );
        let wname = wide(name.as_ref());
        // SAFETY: `wname` is a NUL-terminated UTF-16 string; a null security descriptor gives
        // the default one and a handle that is not inheritable.
        let server = unsafe {
            CreateNamedPipeW(
                wname.as_ptr(),
                access | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
                PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                1,
                65536,
                65536,
                0,
                ptr::null(),
            )
        };
        if server == INVALID_HANDLE_VALUE {
            // SAFETY: reads the calling thread's last-error value.
            let err = unsafe { GetLastError() };
            if err == ERROR_ACCESS_DENIED || err == ERROR_PIPE_BUSY {
                continue; // The name is taken: try another.
            }
            return Err(io::Error::from_raw_os_error(err as i32));
        }
        // SAFETY: `server` is a valid handle we own.
        let server = unsafe { OwnedHandle::from_raw_handle(server) };
        // SAFETY: as above; no FILE_FLAG_OVERLAPPED, so the child's end is synchronous.
        let client = unsafe {
            CreateFileW(
                wname.as_ptr(),
                client_access,
                0,
                ptr::null(),
                OPEN_EXISTING,
                0,
                ptr::null_mut(),
            )
        };
        if client == INVALID_HANDLE_VALUE {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `client` is a valid handle we own.
        return Ok((server, unsafe { OwnedHandle::from_raw_handle(client) }));
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free pipe name after 16 attempts",
    ))
}
