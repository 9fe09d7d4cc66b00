//! Running jobs on other machines over OpenSSH (`-S`, `--slf`, `--ssh`).
//!
//! A job for a host is the same job wrapped: herd runs `ssh … host -- <wrapper>` locally, as
//! a session over a *control master* that herd starts and owns for that host (one login per
//! host instead of one per job: ~10 ms of CPU per job instead of ~150 ms). The local `ssh`'s
//! stdin is a pipe herd holds open, and the remote wrapper ([`wrapper`]) kills the job's
//! process group when it reads end of file there, so a cancelled job, or herd's death, leaves
//! nothing running on the host.
//!
//! [`Hosts`] is the one place that talks to hosts. It hands out job slots (`pick`), at most
//! [`MAX_SESSIONS`] per master (sshd's `MaxSessions`), makes the local job for a placement,
//! tells a host's failure from a job's, and follows `--slf` as it changes; [`connect`](mod@connect) keeps
//! each host connected (masters opened one after another, within sshd's `MaxStartups`; its
//! CPU count; the base files; a failed host tried again later); [`files`] moves
//! `--transferfile`/`--return` files; [`wrapper`] is what runs on the host; [`login`] reads
//! GNU parallel's sshlogins. The scheduler only asks for a placement and gives it back.

mod connect;
mod files;
mod login;
mod wrapper;

pub use login::{parse_list, read_file, resolve, Login, Place};
pub use wrapper::RemoteCommand;

use connect::{check, connect, mark_down, session_command, watch_masters};
use herd_engine::{Herd, Job, JobId, KeepOpen, Stdin};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Sessions herd runs over one master: sshd's default `MaxSessions`. A host with more job
/// slots gets more masters.
pub const MAX_SESSIONS: usize = 10;

/// Where a job runs: a host, and the master its session goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub host: usize,
    master: Option<usize>,
    /// The host's connection generation when the job was placed: the masters of an older
    /// one are gone.
    generation: u32,
    /// This placement's own number: names the file that tells its session was refused.
    token: u64,
}

/// Why a remote job ended with ssh's status 255.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended255 {
    /// The job itself exited 255.
    Job,
    /// Its host's connection broke: the host is out of rotation.
    HostFailed,
    /// The host refused the session (it allows fewer than herd opened on one connection);
    /// the job never ran there.
    Refused,
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
    /// Sessions herd opens on one master: sshd's default `MaxSessions`, lowered when the
    /// host refuses one.
    session_cap: usize,
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
            .position(|m| m.ready && !m.dead && m.sessions < self.session_cap)
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
    /// The next [`Placement::token`].
    tokens: std::sync::atomic::AtomicU64,
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
    let mut ssh = match &login.place {
        Place::Ssh {
            command: Some(c), ..
        } => c.clone(),
        _ => default_ssh.to_vec(),
    };
    if let Place::Ssh {
        port: Some(port), ..
    } = &login.place
    {
        ssh.extend(["-p".to_string(), port.clone()]);
    }
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
        session_cap: MAX_SESSIONS,
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
            tokens: Default::default(),
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
        self.pick_except(&[])
    }

    /// As [`Hosts::pick`], but not on the hosts in `failed_on` while another host is up or
    /// still connecting: GNU parallel's `--retries` "on another computer on which it has not
    /// failed". Once every other host is down or has failed the job too, any host will do.
    /// (A host still connecting counts: a job that fails at once on the first host up must
    /// not spend its retries there while the second is logging in.)
    pub fn pick_except(&self, failed_on: &[usize]) -> Option<Placement> {
        let mut state = self.state();
        let n = state.hosts.len();
        let others = state.hosts.iter().enumerate().any(|(h, host)| {
            !failed_on.contains(&h) && matches!(host.status, Status::Up | Status::Connecting)
        });
        for k in 0..n {
            let h = (state.next + k) % n;
            let host = &mut state.hosts[h];
            if !host.has_room() || (others && failed_on.contains(&h)) {
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
                token: self.token(),
            });
        }
        None
    }

    fn token(&self) -> u64 {
        self.inner
            .tokens
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// The file a session's fallback to a login of its own creates (its `ProxyCommand`): it
    /// exists only when the master did not take the session.
    fn fallback_marker(&self, p: Placement) -> PathBuf {
        self.inner
            .control
            .path()
            .join(format!("fallback-{}", p.token))
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
            token: self.token(),
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
    /// `$PARALLEL_SSHLOGIN` tells the command where it runs, as in GNU parallel.
    pub fn job(&self, p: Placement, command: &RemoteCommand) -> Job {
        let state = self.state();
        let host = &state.hosts[p.host];
        let mut command = command.clone();
        command.env.push((
            "PARALLEL_SSHLOGIN".into(),
            host.login.name.clone().into_bytes(),
        ));
        let command = &command;
        let control = p
            .master
            .and_then(|m| host.masters.get(m))
            .map(|m| m.control.clone())
            .unwrap_or_default();
        let ssh = session_command(&host.ssh, &control, Some(&self.fallback_marker(p)));
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

    /// After a job at `p` ended with ssh's failure status 255: whether the job exited so,
    /// its host failed (its master is gone: the host is taken out of rotation), or the host
    /// refused the session (then herd opens fewer sessions per connection there, and more
    /// connections).
    pub fn ended_255(&self, p: Placement) -> Ended255 {
        let Some(m) = p.master else {
            return Ended255::Job;
        };
        let fell_back = std::fs::remove_file(self.fallback_marker(p)).is_ok();
        let (dead, ssh, control, destination) = {
            let state = self.state();
            let host = &state.hosts[p.host];
            if p.generation != host.generation || host.status == Status::Down {
                return Ended255::HostFailed;
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
            return Ended255::HostFailed;
        }
        if !fell_back {
            return Ended255::Job;
        }
        let mut state = self.state();
        let host = &mut state.hosts[p.host];
        // This session was counted: the master had one fewer when it refused.
        let cap = host.masters[m].sessions.saturating_sub(1).max(1);
        if cap < host.session_cap {
            if host.session_cap == MAX_SESSIONS {
                // Said once: the cap may come down a step at a time.
                eprintln!(
                    "herd: host {} refused a session: it allows fewer sessions on one \
                     connection than herd opened (sshd's MaxSessions); herd opens more \
                     connections to it, and runs the job again",
                    host.login.name
                );
            }
            host.session_cap = cap;
        }
        drop(state);
        self.inner.changed.notify_all();
        Ended255::Refused
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
                let session = session_command(&ssh, &control, None);
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
