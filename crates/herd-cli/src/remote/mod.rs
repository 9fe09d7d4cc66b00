//! Running jobs on other machines over OpenSSH (`-S`, `--slf`, `--ssh`).
//!
//! A job for a host is the same job wrapped: herd runs `ssh … host -- <wrapper>` locally, as
//! a session over a *control master* that herd starts and owns for that host (one login per
//! host instead of one per job: ~10 ms of CPU per job instead of ~150 ms). The local `ssh`'s
//! stdin is a pipe herd holds open, and the remote wrapper ([`wrapper`]) kills the job's
//! process group when it reads end of file there, so a cancelled job, or herd's death, leaves
//! nothing running on the host.
//!
//! [`Hosts`] is the one place that talks to hosts: it connects each (a thread per host,
//! which opens the masters one after another, within sshd's `MaxStartups`), learns its
//! CPU count over the first master, hands out job slots (`pick`), at most
//! [`MAX_SESSIONS`] per master (sshd's `MaxSessions`), and takes a host out of rotation when
//! its master dies (the connection broke, or `ServerAliveInterval` found it silent), then
//! tries it again later. The scheduler only asks for a placement and gives it back.

mod files;
mod login;
mod wrapper;

pub use login::{parse_list, read_file, resolve, Login, Place};
pub use wrapper::RemoteCommand;

use herd::{Herd, Job, JobId, KeepOpen, Stdin};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Sessions herd runs over one master: sshd's default `MaxSessions`. A host with more job
/// slots gets more masters.
pub const MAX_SESSIONS: usize = 10;

/// How long a host's first connection may take (`ConnectTimeout`).
const CONNECT_TIMEOUT: &str = "10";

/// Keepalive on every master: a host that stops answering is noticed in about 3 s, when
/// its master exits (without it a partition goes unnoticed: measured, never in 20 s).
const KEEPALIVE: [&str; 4] = ["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=3"];

/// The first wait before a failed host is tried again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Where a job runs: a host, and the master its session goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub host: usize,
    master: Option<usize>,
    /// The host's connection generation when the job was placed: the masters of an older
    /// one are gone.
    generation: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Connecting,
    Up,
    Down,
    /// Gone from the `--slf` file: no new job; its running jobs finish.
    Retired,
}

struct Master {
    control: PathBuf,
    job: Option<JobId>,
    sessions: usize,
    ready: bool,
    dead: bool,
    /// Its last words, once it has ended.
    error: Option<String>,
}

struct Host {
    login: Login,
    /// The ssh command and its options, before the destination.
    ssh: Vec<String>,
    slots: usize,
    running: usize,
    status: Status,
    masters: Vec<Master>,
    generation: u32,
    /// Why it is down (the master's last words).
    error: Option<String>,
    /// Whether it has been up at least once, or failed at least once.
    tried: bool,
    /// Whether herd said it is down (said once until it is up again).
    said_down: bool,
    /// Whether files go with rsync: both this machine and the host have it.
    rsync: bool,
}

impl Host {
    /// Whether it can take a job now: up, a slot free, and (over ssh) a master with room.
    fn has_room(&self) -> bool {
        self.status == Status::Up
            && self.running < self.slots
            && (self.login.place == Place::Local || self.free_master().is_some())
    }

    /// A master that is up and has a session to spare.
    fn free_master(&self) -> Option<usize> {
        self.masters
            .iter()
            .position(|m| m.ready && !m.dead && m.sessions < MAX_SESSIONS)
    }

    fn destination(&self) -> &str {
        match &self.login.place {
            Place::Ssh { destination, .. } => destination,
            Place::Local => ":",
        }
    }
}

struct State {
    hosts: Vec<Host>,
    /// Round robin: the host to look at first.
    next: usize,
    ended: bool,
}

struct Inner {
    state: Mutex<State>,
    /// State changes, for the connecting threads.
    changed: Condvar,
    /// The masters run as jobs of a herd of their own: contained like jobs (killed with herd),
    /// and their end (a broken connection) comes as an event.
    masters: Herd,
    hold: Mutex<Option<KeepOpen>>,
    control: tempfile::TempDir,
    /// Wakes the scheduler: a host came up or has free slots again.
    wake: Box<dyn Fn() + Send + Sync>,
    /// Job slots for a host of N CPUs (`-j`, applied per host as in GNU parallel).
    slots_for: Box<dyn Fn(usize) -> usize + Send + Sync>,
    /// Whether this machine has rsync.
    local_rsync: bool,
    /// `--basefile`: sent to each host before its first job.
    basefiles: Vec<Vec<u8>>,
    /// `--cleanup`: the base files are removed at the end.
    cleanup: bool,
}

/// The hosts of a run.
pub struct Hosts {
    inner: Arc<Inner>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// `--slf`: the files, re-read when they change.
    files: Mutex<LoginFiles>,
    default_ssh: Vec<String>,
}

/// `--slf` files and what they said last, as GNU parallel re-reads them: at most once a
/// second, when one's modification time changed.
struct LoginFiles {
    paths: Vec<PathBuf>,
    stamps: Vec<Option<std::time::SystemTime>>,
    /// The `-S` logins, which stay.
    fixed: Vec<Login>,
    checked: Instant,
}

fn stamps(paths: &[PathBuf]) -> Vec<Option<std::time::SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// A host for `login`, not yet connected.
fn new_host(login: Login, default_ssh: &[String], slots_for: &dyn Fn(usize) -> usize) -> Host {
    let ssh = match &login.place {
        Place::Ssh {
            command: Some(c), ..
        } => c.clone(),
        _ => default_ssh.to_vec(),
    };
    let local = login.place == Place::Local;
    let slots = if local {
        slots_for(login.cpus.unwrap_or_else(crate::options::cpus))
    } else {
        0
    };
    Host {
        login,
        ssh,
        slots,
        running: 0,
        status: if local {
            Status::Up
        } else {
            Status::Connecting
        },
        masters: Vec::new(),
        generation: 0,
        error: None,
        tried: local,
        said_down: false,
        rsync: false,
    }
}

/// Hosts' configuration.
pub struct Config {
    /// `-S`'s logins.
    pub logins: Vec<Login>,
    /// `--slf` files (their logins are read here, and again when they change).
    pub login_files: Vec<PathBuf>,
    /// `--ssh`: the ssh command for logins without their own.
    pub ssh: Option<String>,
    pub slots_for: Box<dyn Fn(usize) -> usize + Send + Sync>,
    pub wake: Box<dyn Fn() + Send + Sync>,
    /// `--basefile`: files sent to each host before its first job.
    pub basefiles: Vec<Vec<u8>>,
    /// `--cleanup`: and removed from it at the end.
    pub cleanup: bool,
}

fn words(command: &str) -> Result<Vec<String>, String> {
    match shlex::split(command) {
        Some(w) if !w.is_empty() => Ok(w),
        _ => Err(format!("invalid ssh command '{command}'")),
    }
}

impl Hosts {
    /// Starts connecting to every host. Jobs can be placed as soon as one is up.
    pub fn start(config: Config) -> Result<Hosts, String> {
        if cfg!(windows) {
            return Err("remote hosts are not supported on Windows yet (herd needs \
                        OpenSSH's connection sharing, which Windows' ssh lacks)"
                .into());
        }
        let default_ssh = match &config.ssh {
            Some(c) => words(c).map_err(|e| format!("--ssh: {e}"))?,
            None => vec!["ssh".to_string()],
        };
        let files = LoginFiles {
            stamps: stamps(&config.login_files),
            paths: config.login_files,
            fixed: config.logins.clone(),
            checked: Instant::now(),
        };
        let mut logins = config.logins;
        for path in &files.paths {
            logins.extend(read_file(path)?);
        }
        if logins.is_empty() {
            return Err("no sshlogin: the sshlogin files are empty".into());
        }
        let hosts: Vec<Host> = logins
            .into_iter()
            .map(|l| new_host(l, &default_ssh, &*config.slots_for))
            .collect();
        let masters = Herd::builder()
            .max_running(usize::MAX)
            .build()
            .map_err(|e| format!("cannot start the ssh masters' herd: {e}"))?;
        // A short directory: a control socket's path must fit in 108 bytes.
        let control = tempfile::Builder::new()
            .prefix("herd-ssh-")
            .tempdir_in(if cfg!(unix) {
                PathBuf::from("/tmp")
            } else {
                std::env::temp_dir()
            })
            .map_err(|e| format!("cannot create a directory for ssh control sockets: {e}"))?;
        let hold = masters.keep_open();
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                hosts,
                next: 0,
                ended: false,
            }),
            changed: Condvar::new(),
            masters,
            hold: Mutex::new(Some(hold)),
            control,
            wake: config.wake,
            slots_for: config.slots_for,
            // HERD_NO_RSYNC: plain copies, should rsync misbehave (and to test them).
            local_rsync: std::env::var_os("HERD_NO_RSYNC").is_none()
                && Command::new("rsync")
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
            basefiles: config.basefiles,
            cleanup: config.cleanup,
        });
        let n = inner.state.lock().unwrap().hosts.len();
        let watcher = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("herd-masters".into())
                .spawn(move || watch_masters(&inner))
                .map_err(|e| format!("cannot start a thread: {e}"))?
        };
        let hosts = Hosts {
            inner,
            threads: Mutex::new(vec![watcher]),
            files: Mutex::new(files),
            default_ssh,
        };
        for h in 0..n {
            hosts.start_connecting(h)?;
        }
        Ok(hosts)
    }

    /// Starts the thread that connects host `h` (none for this machine).
    fn start_connecting(&self, h: usize) -> Result<(), String> {
        if self.state().hosts[h].login.place == Place::Local {
            return Ok(());
        }
        let inner = self.inner.clone();
        let thread = std::thread::Builder::new()
            .name("herd-connect".into())
            .spawn(move || connect(&inner, h))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        self.threads.lock().unwrap().push(thread);
        Ok(())
    }

    /// `--slf`: reads the files again if one changed (at most once a second): hosts no longer
    /// listed take no new job, new ones are connected.
    pub fn reload(&self) {
        let mut files = self.files.lock().unwrap();
        if files.paths.is_empty() || files.checked.elapsed() < Duration::from_secs(1) {
            return;
        }
        files.checked = Instant::now();
        let now = stamps(&files.paths);
        if now == files.stamps {
            return;
        }
        files.stamps = now;
        let mut logins = files.fixed.clone();
        for path in &files.paths {
            match read_file(path) {
                Ok(l) => logins.extend(l),
                Err(e) => {
                    eprintln!("herd: {e}; the hosts stay as they were");
                    return;
                }
            }
        }
        drop(files);
        let mut added = Vec::new();
        {
            let mut state = self.state();
            for host in state.hosts.iter_mut() {
                if host.status != Status::Retired
                    && !logins.iter().any(|l| l.name == host.login.name)
                {
                    eprintln!(
                        "herd: host {} left the sshlogin file: no new jobs there",
                        host.login.name
                    );
                    host.status = Status::Retired;
                }
            }
            for login in logins {
                let listed = state
                    .hosts
                    .iter()
                    .any(|h| h.status != Status::Retired && h.login.name == login.name);
                if !listed {
                    eprintln!("herd: host {} joined from the sshlogin file", login.name);
                    added.push(state.hosts.len());
                    state
                        .hosts
                        .push(new_host(login, &self.default_ssh, &*self.inner.slots_for));
                }
            }
        }
        self.inner.changed.notify_all();
        for h in added {
            if let Err(e) = self.start_connecting(h) {
                eprintln!("herd: {e}");
            }
        }
        (self.inner.wake)();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap()
    }

    /// Takes a job slot on the next host that has one (round robin), or `None` while every
    /// host is busy, connecting or down.
    pub fn pick(&self) -> Option<Placement> {
        self.pick_except(None)
    }

    /// As [`Hosts::pick`], but not on host `avoid` (where the job just failed) while
    /// another host is up: GNU parallel's `--retries` "on another computer".
    pub fn pick_except(&self, avoid: Option<usize>) -> Option<Placement> {
        let mut state = self.state();
        let n = state.hosts.len();
        let others_up = state
            .hosts
            .iter()
            .enumerate()
            .any(|(h, host)| Some(h) != avoid && host.status == Status::Up);
        for k in 0..n {
            let h = (state.next + k) % n;
            let host = &mut state.hosts[h];
            if !host.has_room() || (Some(h) == avoid && others_up) {
                continue;
            }
            let master = host.free_master();
            if let Some(m) = master {
                host.masters[m].sessions += 1;
            }
            host.running += 1;
            let generation = host.generation;
            state.next = h + 1;
            return Some(Placement {
                host: h,
                master,
                generation,
            });
        }
        None
    }

    /// How many hosts there are.
    pub fn count(&self) -> usize {
        self.state().hosts.len()
    }

    /// The sshlogin of host `h`, as written.
    pub fn host_name(&self, h: usize) -> String {
        self.state().hosts[h].login.name.clone()
    }

    /// Takes a job slot on host `h` (`--onall`): `Ok(None)` while it is busy or connecting,
    /// an error when it is down.
    pub fn pick_on(&self, h: usize) -> Result<Option<Placement>, String> {
        let mut state = self.state();
        let host = &mut state.hosts[h];
        match host.status {
            Status::Down => {
                return Err(format!(
                    "host {} is down: {}",
                    host.login.name,
                    host.error.as_deref().unwrap_or("unreachable")
                ))
            }
            Status::Retired => {
                return Err(format!("host {} left the sshlogin file", host.login.name))
            }
            Status::Up | Status::Connecting => {}
        }
        if !host.has_room() {
            return Ok(None);
        }
        let master = host.free_master();
        if let Some(m) = master {
            host.masters[m].sessions += 1;
        }
        host.running += 1;
        Ok(Some(Placement {
            host: h,
            master,
            generation: host.generation,
        }))
    }

    /// Gives a job's slot back.
    pub fn release(&self, p: Placement) {
        let mut state = self.state();
        let host = &mut state.hosts[p.host];
        host.running -= 1;
        if let (Some(m), true) = (p.master, p.generation == host.generation) {
            host.masters[m].sessions -= 1;
        }
        drop(state);
        (self.inner.wake)();
    }

    /// The sshlogin as written (the joblog's Host column).
    pub fn name(&self, p: Placement) -> String {
        self.state().hosts[p.host].login.name.clone()
    }

    /// Whether the job runs on this machine.
    pub fn is_local(&self, p: Placement) -> bool {
        p.master.is_none()
    }

    /// The local job that runs `command` at `p`: a session over the placement's master.
    pub fn job(&self, p: Placement, command: &RemoteCommand) -> Job {
        let state = self.state();
        let host = &state.hosts[p.host];
        let control = p
            .master
            .and_then(|m| host.masters.get(m))
            .map(|m| m.control.clone())
            .unwrap_or_default();
        let ssh = session_command(&host.ssh, &control);
        let job = if command.has_files() {
            let session = files::Session {
                ssh: &ssh,
                destination: host.destination(),
                rsync: host.rsync,
            };
            Job::new("/bin/sh")
                .arg("-c")
                .arg(crate::jobs::os(session.job_script(command)))
        } else {
            Job::new(&ssh[0])
                .args(&ssh[1..])
                .arg(host.destination())
                .arg("--")
                .arg(command.word())
        };
        job.stdin(Stdin::HeldOpen)
    }

    /// After a job at `p` ended with ssh's failure status 255: whether its host failed (its
    /// master is gone). A host whose master still answers ran the job, which exited 255.
    /// A failed host is taken out of rotation.
    pub fn host_failed(&self, p: Placement) -> bool {
        let Some(m) = p.master else {
            return false;
        };
        let (dead, ssh, control, destination) = {
            let state = self.state();
            let host = &state.hosts[p.host];
            if p.generation != host.generation || host.status == Status::Down {
                return true;
            }
            if host.status == Status::Retired {
                // Out of rotation already: whether its connection broke matters no more.
                return !check(&host.ssh, &host.masters[m].control, host.destination());
            }
            let master = &host.masters[m];
            (
                master.dead,
                host.ssh.clone(),
                master.control.clone(),
                host.destination().to_string(),
            )
        };
        // The master exits before its sessions' clients do when the connection breaks, so
        // by now a dead master no longer answers.
        if dead || !check(&ssh, &control, &destination) {
            mark_down(
                &self.inner,
                p.host,
                p.generation,
                "the connection to it was lost".into(),
            );
            return true;
        }
        false
    }

    /// When no host can run jobs and none is still connecting for the first time: why.
    pub fn all_down(&self) -> Option<String> {
        let state = self.state();
        let listed = || state.hosts.iter().filter(|h| h.status != Status::Retired);
        if listed().any(|h| h.status == Status::Up || !h.tried) {
            return None;
        }
        if listed().next().is_none() {
            return Some("no host left in the sshlogin files".into());
        }
        let why: Vec<String> = listed()
            .map(|h| format!("{}: {}", h.login.name, h.error.as_deref().unwrap_or("down")))
            .collect();
        Some(format!("no host can run jobs ({})", why.join("; ")))
    }

    /// Whether a job could be placed now.
    pub fn has_room(&self) -> bool {
        self.state().hosts.iter().any(Host::has_room)
    }

    /// Closes every master and stops connecting.
    pub fn end(&self) {
        let masters: Vec<(Vec<String>, PathBuf, String)> = {
            let mut state = self.state();
            if state.ended {
                return;
            }
            state.ended = true;
            state
                .hosts
                .iter()
                .flat_map(|h| {
                    h.masters.iter().filter(|m| m.ready && !m.dead).map(|m| {
                        (
                            h.ssh.clone(),
                            m.control.clone(),
                            h.destination().to_string(),
                        )
                    })
                })
                .collect()
        };
        self.inner.changed.notify_all();
        let mut cleaned = std::collections::HashSet::new();
        for (ssh, control, destination) in masters {
            if self.inner.cleanup
                && !self.inner.basefiles.is_empty()
                && cleaned.insert(destination.clone())
            {
                // --cleanup: the base files go, over the host's first live master.
                let session = session_command(&ssh, &control);
                let files = files::Session {
                    ssh: &session,
                    destination: &destination,
                    rsync: false,
                };
                let _ = Command::new("/bin/sh")
                    .arg("-c")
                    .arg(crate::jobs::os(files.remove(
                        None,
                        &self.inner.basefiles,
                        false,
                    )))
                    .stdin(Stdio::null())
                    .status();
            }
            let _ = Command::new(&ssh[0])
                .args(&ssh[1..])
                .arg("-S")
                .arg(&control)
                .args(["-O", "exit", &destination])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // What -O exit did not end (a master still connecting) is killed with its tree.
        self.inner.masters.cancel_all();
        self.inner.hold.lock().unwrap().take();
        for t in self.threads.lock().unwrap().drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.end();
    }
}

fn mark_down(inner: &Inner, h: usize, generation: u32, why: String) {
    let mut state = inner.state.lock().unwrap();
    let host = &mut state.hosts[h];
    if host.generation != generation || matches!(host.status, Status::Down | Status::Retired) {
        return;
    }
    host.status = Status::Down;
    host.tried = true;
    if !host.said_down {
        eprintln!(
            "herd: host {} is down, its jobs go to other hosts: {why}",
            host.login.name
        );
        host.said_down = true;
    }
    host.error = Some(why);
    drop(state);
    inner.changed.notify_all();
    (inner.wake)();
}

/// ssh and its options for a session over the master at `control`.
fn session_command(ssh: &[String], control: &std::path::Path) -> Vec<String> {
    let mut words = ssh.to_vec();
    words.push("-S".into());
    words.push(control.to_string_lossy().into_owned());
    // Without a master, ssh would log in on its own (and meet MaxStartups): make that fail
    // at once instead, and count it as the host's failure.
    words.extend(["-o", "ControlMaster=no", "-o", "ProxyCommand=false", "-T"].map(String::from));
    words
}

/// `ssh -O check`: whether the master at `control` answers.
fn check(ssh: &[String], control: &std::path::Path, destination: &str) -> bool {
    Command::new(&ssh[0])
        .args(&ssh[1..])
        .arg("-S")
        .arg(control)
        .args(["-O", "check", destination])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Follows the masters' herd: a master that ends takes its host down.
fn watch_masters(inner: &Inner) {
    while let Some(event) = inner.masters.next_event() {
        let herd::Event::Finished(result) = event else {
            continue;
        };
        let why = last_words(&result);
        let mut state = inner.state.lock().unwrap();
        let found = state.hosts.iter_mut().enumerate().find_map(|(h, host)| {
            let m = host.masters.iter_mut().find(|m| m.job == Some(result.id))?;
            m.dead = true;
            m.ready = false;
            m.error = Some(why.clone());
            Some((h, host.generation, host.status))
        });
        let ended = state.ended;
        drop(state);
        inner.changed.notify_all();
        if let (Some((h, generation, Status::Up)), false) = (found, ended) {
            mark_down(inner, h, generation, why);
        }
    }
}

/// What a master said before it ended: its last line on stderr, or its exit status.
fn last_words(result: &herd::JobResult) -> String {
    let err = result.stderr.to_vec().unwrap_or_default();
    let text = String::from_utf8_lossy(&err);
    match text.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => line.trim().to_string(),
        None => match result.outcome {
            herd::Outcome::Exited(c) => format!("ssh exited with status {c}"),
            _ => format!("ssh ended: {:?}", result.outcome),
        },
    }
}

/// Connects host `h`, keeps it connected, and tries it again after a failure, until the run
/// ends.
fn connect(inner: &Inner, h: usize) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match open_master(inner, h).and_then(|()| learn_slots(inner, h)) {
            Ok(()) => {
                backoff = FIRST_BACKOFF;
                let wanted = {
                    let mut state = inner.state.lock().unwrap();
                    let host = &mut state.hosts[h];
                    if host.status == Status::Retired {
                        return;
                    }
                    if host.said_down {
                        eprintln!("herd: host {} is back", host.login.name);
                    }
                    host.status = Status::Up;
                    host.tried = true;
                    host.said_down = false;
                    host.slots.div_ceil(MAX_SESSIONS)
                };
                (inner.wake)();
                // More masters for more than MAX_SESSIONS slots, one login at a time.
                for _ in 1..wanted {
                    if open_master(inner, h).is_err() {
                        break;
                    }
                    (inner.wake)();
                }
                // Connected: wait for the host to go down, or the run to end.
                let mut state = inner.state.lock().unwrap();
                while !state.ended && state.hosts[h].status == Status::Up {
                    state = inner.changed.wait(state).unwrap();
                }
            }
            Err(why) => {
                let mut state = inner.state.lock().unwrap();
                if state.ended || state.hosts[h].status == Status::Retired {
                    return;
                }
                let host = &mut state.hosts[h];
                host.tried = true;
                if !host.said_down {
                    eprintln!("herd: cannot reach host {}: {why}", host.login.name);
                    host.said_down = true;
                }
                host.status = Status::Down;
                host.error = Some(why);
                drop(state);
                inner.changed.notify_all();
                (inner.wake)();
            }
        }
        // Down: try again after a while (sooner when the run ends).
        let until = Instant::now() + backoff;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        let mut state = inner.state.lock().unwrap();
        loop {
            if state.ended || state.hosts[h].status == Status::Retired {
                return;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = inner.changed.wait_timeout(state, left).unwrap().0;
        }
        // A new connection: the old masters are gone.
        let host = &mut state.hosts[h];
        host.generation += 1;
        host.masters.clear();
        host.status = Status::Connecting;
    }
}

/// Starts one more master for host `h` and waits until it answers.
fn open_master(inner: &Inner, h: usize) -> Result<(), String> {
    let (ssh, destination, control, index) = {
        let mut state = inner.state.lock().unwrap();
        if state.ended {
            return Err("the run has ended".into());
        }
        let host = &mut state.hosts[h];
        let index = host.masters.len();
        let control = inner
            .control
            .path()
            .join(format!("{h}-{}-{index}", host.generation));
        host.masters.push(Master {
            control: control.clone(),
            job: None,
            sessions: 0,
            ready: false,
            dead: false,
            error: None,
        });
        (
            host.ssh.clone(),
            host.destination().to_string(),
            control,
            index,
        )
    };
    let job = Job::new(&ssh[0])
        .args(&ssh[1..])
        .args(["-M", "-N", "-S"])
        .arg(&control)
        .args(["-o", "ControlPersist=no", "-o", "BatchMode=yes"])
        .args(["-o", &format!("ConnectTimeout={CONNECT_TIMEOUT}")])
        .args(KEEPALIVE)
        .arg(&destination)
        .collect_output(true);
    let id = inner
        .masters
        .submit(job)
        .map_err(|e| format!("cannot start ssh: {e}"))?;
    let generation = {
        let mut state = inner.state.lock().unwrap();
        let host = &mut state.hosts[h];
        if let Some(m) = host.masters.get_mut(index) {
            m.job = Some(id);
        }
        host.generation
    };
    // The master listens on its socket once logged in: ask it until it answers, or ends.
    let mut pause = Duration::from_millis(5);
    loop {
        {
            let state = inner.state.lock().unwrap();
            let host = &state.hosts[h];
            if state.ended || host.generation != generation {
                return Err("the run has ended".into());
            }
            let master = &host.masters[index];
            if master.dead {
                return Err(master.error.clone().unwrap_or_default());
            }
        }
        if check(&ssh, &control, &destination) {
            let mut state = inner.state.lock().unwrap();
            state.hosts[h].masters[index].ready = true;
            return Ok(());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Asks host `h`, over its first master, for its CPU count (unless `N/` gave its slots) and
/// whether it has rsync; sets its job slots; sends the `--basefile`s.
fn learn_slots(inner: &Inner, h: usize) -> Result<(), String> {
    let (session, destination, cpus) = {
        let state = inner.state.lock().unwrap();
        let host = &state.hosts[h];
        (
            session_command(&host.ssh, &host.masters[0].control),
            host.destination().to_string(),
            host.login.cpus,
        )
    };
    let dead = || {
        let state = inner.state.lock().unwrap();
        let master = &state.hosts[h].masters[0];
        master
            .dead
            .then(|| master.error.clone().unwrap_or_default())
    };
    let out = Command::new(&session[0])
        .args(&session[1..])
        .arg(&destination)
        .arg("--")
        .arg(wrapper::carry(
            b"n=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || \
              sysctl -n hw.ncpu 2>/dev/null || echo 1)\n\
              command -v rsync >/dev/null 2>&1 && r=rsync || r=none\n\
              echo \"$n $r\"",
        ))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let answer = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => match dead() {
            Some(why) => return Err(why),
            None => String::new(),
        },
    };
    let mut words = answer.split_whitespace();
    let probed: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    let rsync = inner.local_rsync && words.next() == Some("rsync");
    {
        let mut state = inner.state.lock().unwrap();
        let host = &mut state.hosts[h];
        host.slots = (inner.slots_for)(cpus.unwrap_or(probed)).max(1);
        host.rsync = rsync;
    }
    if !inner.basefiles.is_empty() {
        let files = files::Session {
            ssh: &session,
            destination: &destination,
            rsync,
        };
        let script = files.send(None, &inner.basefiles, "--basefile");
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(crate::jobs::os(script))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("--basefile: cannot run sh: {e}"))?;
        if !out.status.success() {
            if let Some(why) = dead() {
                return Err(why);
            }
            let err = String::from_utf8_lossy(&out.stderr);
            let why = err.lines().rev().find(|l| !l.trim().is_empty());
            return Err(why
                .unwrap_or("--basefile: cannot send")
                .trim_start_matches("herd: ")
                .to_string());
        }
    }
    Ok(())
}
