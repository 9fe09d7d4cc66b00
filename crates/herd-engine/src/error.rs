//! Error types.

use std::io;
use std::path::PathBuf;

/// An error of the herd itself (as opposed to one job's failure, which is a [`JobResult`]).
///
/// [`JobResult`]: crate::JobResult
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused to set up the engine (event loop, threads).
    #[error("cannot start the engine: {0}")]
    Setup(#[source] io::Error),
    /// The herd was shut down; no more jobs are accepted.
    #[error("the herd has shut down")]
    ShutDown,
    /// A job's output was spilled to a temporary file, and reading it back failed.
    #[error("cannot read a job's output back from its temporary file: {0}")]
    ReadOutput(#[source] io::Error),
}

/// For code that works in `io::Result`: the system's error where there is one.
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Setup(e) | Error::ReadOutput(e) => e,
            other => io::Error::other(other),
        }
    }
}

/// Why a job could not be started. The job fails alone; the others run.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// No such program (in `PATH`, or at the path given).
    #[error("program not found: {program}")]
    NotFound {
        /// The program as the job named it.
        program: String,
    },
    /// The program exists, but the interpreter its `#!` line names does not (or, for a
    /// binary, its dynamic loader).
    #[error("{program}: its interpreter {interpreter} was not found")]
    InterpreterNotFound {
        /// The program, as found.
        program: String,
        /// The interpreter, as the program's first line names it.
        interpreter: String,
    },
    /// The program exists but cannot be executed.
    #[error("cannot execute {program}: {source}")]
    NotExecutable {
        /// The program, as found.
        program: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The working directory is missing or not a directory.
    #[error("working directory {}: {source}", dir.display())]
    WorkingDir {
        /// The directory.
        dir: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The file to feed on stdin cannot be opened.
    #[error("stdin file {}: {source}", path.display())]
    StdinFile {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The job cannot be expressed to the system (an argument with a NUL byte, say).
    #[error("invalid job: {0}")]
    Invalid(String),
    /// Any other failure to start the program.
    #[error("cannot start {program}: {source}")]
    Io {
        /// The program.
        program: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

impl SpawnError {
    /// The exit code a POSIX shell reports for this failure: 127 for a missing program, 126
    /// for one that cannot be executed, 127 otherwise.
    pub fn shell_exit_code(&self) -> i32 {
        match self {
            SpawnError::NotExecutable { .. } | SpawnError::InterpreterNotFound { .. } => 126,
            _ => 127,
        }
    }
}
