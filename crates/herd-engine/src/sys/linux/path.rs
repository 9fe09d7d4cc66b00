//! Looking a program up in `PATH`.
//!
//! `posix_spawnp` searches the *parent's* `PATH` even when the child gets another environment,
//! and repeats the search (a failed `execve` per directory) for every job. herd resolves the
//! program itself, with the job's `PATH` when it sets one, and caches the answer: a run of
//! ten thousand jobs of one program looks it up once.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why a lookup found nothing runnable.
pub(crate) enum Lookup {
    NotFound,
    /// Found, but not executable (the last such candidate, as a shell reports it).
    NotExecutable(PathBuf),
}

type Key = (OsString, Option<OsString>);

static CACHE: Mutex<Option<HashMap<Key, PathBuf>>> = Mutex::new(None);

/// The path to execute for `program`: itself when it names a path, else the first executable
/// regular file of that name in `path_var` (or the parent's `PATH`).
pub(crate) fn resolve(program: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, Lookup> {
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    if program.is_empty() {
        return Err(Lookup::NotFound);
    }
    let key = (program.to_owned(), path_var.map(OsStr::to_owned));
    if let Some(found) = CACHE.lock().unwrap().as_ref().and_then(|c| c.get(&key)) {
        return Ok(found.clone());
    }
    let parent_path;
    let search = match path_var {
        Some(p) => p,
        None => {
            parent_path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
            &parent_path
        }
    };
    let mut not_executable = None;
    for dir in std::env::split_paths(search) {
        // An empty entry means the current directory, as in execvp.
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".").to_path_buf()
        } else {
            dir
        };
        let candidate = dir.join(program);
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if meta.permissions().mode() & 0o111 == 0 {
            not_executable = Some(candidate);
            continue;
        }
        CACHE
            .lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .insert(key, candidate.clone());
        return Ok(candidate);
    }
    Err(not_executable.map_or(Lookup::NotFound, Lookup::NotExecutable))
}

/// Forgets every cached path for `program`, whatever `PATH` it was looked up in, after the file
/// one named turned out to be gone.
pub(crate) fn forget(program: &OsStr) {
    if let Some(cache) = CACHE.lock().unwrap().as_mut() {
        cache.retain(|(name, _), _| name != program);
    }
}
