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

mod login;
mod wrapper;

pub use login::{parse_list, read_file, Login, Place};
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
}

/// The hosts of a run.
pub struct Hosts {
    inner: Arc<Inner>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// Hosts' configuration.
pub struct Config {
    pub logins: Vec<Login>,
    /// `--ssh`: the ssh command for logins without their own.
    pub ssh: Option<String>,
    pub slots_for: Box<dyn Fn(usize) -> usize + Send + Sync>,
    pub wake: Box<dyn Fn() + Send + Sync>,
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
        let mut hosts = Vec::new();
        for login in config.logins {
            let ssh = match &login.place {
                Place::Ssh {
                    command: Some(c), ..
                } => c.clone(),
                _ => default_ssh.clone(),
            };
            let local = login.place == Place::Local;
            let slots = if local {
                (config.slots_for)(login.cpus.unwrap_or_else(crate::options::cpus))
            } else {
                0
            };
            hosts.push(Host {
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
            });
        }
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
        });
        let mut threads = Vec::new();
        let n = inner.state.lock().unwrap().hosts.len();
        {
            let inner = inner.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("herd-masters".into())
                    .spawn(move || watch_masters(&inner))
                    .map_err(|e| format!("cannot start a thread: {e}"))?,
            );
        }
        for h in 0..n {
            if inner.state.lock().unwrap().hosts[h].login.place == Place::Local {
                continue;
            }
            let inner = inner.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("herd-connect".into())
                    .spawn(move || connect(&inner, h))
                    .map_err(|e| format!("cannot start a thread: {e}"))?,
            );
        }
        Ok(Hosts {
            inner,
            threads: Mutex::new(threads),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap()
    }

    /// Takes a job slot on the next host that has one (round robin), or `None` while every
    /// host is busy, connecting or down.
    pub fn pick(&self) -> Option<Placement> {
        let mut state = self.state();
        let n = state.hosts.len();
        for k in 0..n {
            let h = (state.next + k) % n;
            let host = &mut state.hosts[h];
            if !host.has_room() {
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
        Job::new(&host.ssh[0])
            .args(&host.ssh[1..])
            .arg("-S")
            .arg(control)
            .args(["-o", "ControlMaster=no"])
            // Without a master, ssh would log in on its own (and meet MaxStartups): make that
            // fail at once instead, and count it as the host's failure.
            .args(["-o", "ProxyCommand=false"])
            .arg("-T")
            .arg(host.destination())
            .arg("--")
            .arg(command.word())
            .stdin(Stdin::HeldOpen)
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
        if state
            .hosts
            .iter()
            .any(|h| h.status == Status::Up || !h.tried)
        {
            return None;
        }
        let why: Vec<String> = state
            .hosts
            .iter()
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
        for (ssh, control, destination) in masters {
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
    if host.generation != generation || host.status == Status::Down {
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
                if state.ended {
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
            if state.ended {
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

/// Sets host `h`'s job slots: from `N/`, else from its CPU count, asked over the master.
fn learn_slots(inner: &Inner, h: usize) -> Result<(), String> {
    let (ssh, control, destination, cpus) = {
        let state = inner.state.lock().unwrap();
        let host = &state.hosts[h];
        (
            host.ssh.clone(),
            host.masters[0].control.clone(),
            host.destination().to_string(),
            host.login.cpus,
        )
    };
    let cpus = match cpus {
        Some(n) => n,
        None => {
            let out = Command::new(&ssh[0])
                .args(&ssh[1..])
                .arg("-S")
                .arg(&control)
                .args(["-o", "ControlMaster=no", "-o", "ProxyCommand=false", "-T"])
                .arg(&destination)
                .arg("--")
                .arg(wrapper::carry(
                    b"nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || \
                      sysctl -n hw.ncpu 2>/dev/null || echo 1",
                ))
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output();
            match out {
                Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<usize>()
                    .unwrap_or(1)
                    .max(1),
                _ => {
                    let state = inner.state.lock().unwrap();
                    let master = &state.hosts[h].masters[0];
                    if master.dead {
                        return Err(master.error.clone().unwrap_or_default());
                    }
                    1
                }
            }
        }
    };
    let mut state = inner.state.lock().unwrap();
    state.hosts[h].slots = (inner.slots_for)(cpus).max(1);
    Ok(())
}
