//! Keeping hosts connected: a thread per host opens its control masters one after another
//! (so sshd's `MaxStartups` never drops a login), asks the host for its CPU count and rsync
//! over the first, sends the `--basefile`s, and after a failure tries again with a growing
//! wait. The masters are jobs of a herd of their own; [`watch_masters`] takes a host down
//! when one ends (the connection broke, or keepalive found it silent).

use super::{files, wrapper, Inner, Master, Status, MAX_SESSIONS};
use herd_engine::Job;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a host's first connection may take (`ConnectTimeout`).
const CONNECT_TIMEOUT: &str = "10";

/// Keepalive on every master: a host that stops answering is noticed in about 3 s, when
/// its master exits (without it a partition goes unnoticed: measured, never in 20 s).
const KEEPALIVE: [&str; 4] = ["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=3"];

/// The most jobs at once on one host (`-j 0` there): 10 masters' worth of sessions.
const MOST_SLOTS: usize = 10 * MAX_SESSIONS;

/// The first wait before a failed host is tried again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Takes host `h` out of rotation, once per connection (`generation`), and says why.
pub(super) fn mark_down(inner: &Inner, h: usize, generation: u32, why: String) {
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
///
/// When the master does not take the session (it is gone, or the host refused one more
/// session on its connection), ssh would log in on its own and meet `MaxStartups`: its
/// `ProxyCommand` makes that fail at once instead, and leaves `fallback` behind, so that
/// herd can tell a refused session from the job's own status 255.
pub(super) fn session_command(
    ssh: &[String],
    control: &std::path::Path,
    fallback: Option<&std::path::Path>,
) -> Vec<String> {
    let mut words = ssh.to_vec();
    words.push("-S".into());
    words.push(control.to_string_lossy().into_owned());
    let proxy = match fallback {
        // The control directory's name is herd's own (letters, digits, - and /): no quoting.
        Some(marker) => format!("ProxyCommand=touch {}", marker.display()),
        None => "ProxyCommand=false".into(),
    };
    words.extend(["-o", "ControlMaster=no", "-o", &proxy, "-T"].map(String::from));
    words
}

/// `ssh -O check`: whether the master at `control` answers.
pub(super) fn check(ssh: &[String], control: &std::path::Path, destination: &str) -> bool {
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
pub(super) fn watch_masters(inner: &Inner) {
    while let Some(event) = inner.masters.next_event() {
        let herd_engine::Event::Finished(result) = event else {
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
fn last_words(result: &herd_engine::JobResult) -> String {
    let err = result.stderr.to_vec().unwrap_or_default();
    let text = String::from_utf8_lossy(&err);
    match text.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => line.trim().to_string(),
        None => match result.outcome {
            herd_engine::Outcome::Exited(c) => format!("ssh exited with status {c}"),
            _ => format!("ssh ended: {:?}", result.outcome),
        },
    }
}

/// Connects host `h`, keeps it connected, and tries it again after a failure, until the run
/// ends.
pub(super) fn connect(inner: &Inner, h: usize) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match open_master(inner, h).and_then(|()| learn_slots(inner, h)) {
            Ok(()) => {
                backoff = FIRST_BACKOFF;
                {
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
                };
                (inner.wake)();
                // Connected: open more masters while its slots need them (more slots than
                // sessions a connection takes), one login at a time; then wait for the host
                // to go down, or the run to end.
                loop {
                    let mut state = inner.state.lock().unwrap();
                    while !state.ended
                        && state.hosts[h].status == Status::Up
                        && !needs_master(&state.hosts[h])
                    {
                        state = inner.changed.wait(state).unwrap();
                    }
                    if state.ended || state.hosts[h].status != Status::Up {
                        break;
                    }
                    drop(state);
                    if open_master(inner, h).is_err() {
                        break;
                    }
                    (inner.wake)();
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

/// Whether host `h`'s slots need another master: more slots than its live masters take
/// sessions.
fn needs_master(host: &super::Host) -> bool {
    let live = host.masters.iter().filter(|m| !m.dead).count();
    live * host.session_cap < host.slots
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
            session_command(&host.ssh, &host.masters[0].control, None),
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
        host.slots = (inner.slots_for)(cpus.unwrap_or(probed)).clamp(1, MOST_SLOTS);
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
