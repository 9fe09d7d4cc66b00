//! Helpers shared by herd's integration tests: deterministic random data, a child that writes
//! it on both streams at once, and a way to find processes that should not exist any more.

use std::path::{Path, PathBuf};

/// splitmix64: a small deterministic generator, so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

/// A size from 0 to 256 KiB: mostly small, one in eight large, and some empty.
pub fn output_size(rng: &mut Rng) -> usize {
    match rng.below(8) {
        0 => rng.below(256 * 1024 + 1) as usize,
        1 => 0,
        _ => rng.below(8 * 1024) as usize,
    }
}

/// Writes `count` files of random binary data of random sizes into `dir`.
pub fn data_files(dir: &Path, count: usize, seed: u64) -> Vec<(PathBuf, Vec<u8>)> {
    let mut rng = Rng(seed);
    (0..count)
        .map(|i| {
            let size = output_size(&mut rng);
            let data = rng.bytes(size);
            let path = dir.join(format!("data-{i}.bin"));
            std::fs::write(&path, &data).unwrap();
            (path, data)
        })
        .collect()
}

/// A shell script that copies `$1` to stdout in blocks of `$2` bytes while copying `$3` to
/// stderr in blocks of `$4` bytes, concurrently: random binary output in writes of random size
/// on both streams at once.
pub const SPEW: &str =
    "dd if=\"$1\" bs=\"$2\" status=none & dd if=\"$3\" bs=\"$4\" status=none >&2; wait";

/// Processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str() else { continue };
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        // A zombie has an empty command line and is not running anything.
        if cmdline.contains(marker) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// Asserts that no process with `marker` in its command line remains. A killed process
/// disappears a moment after the signal is sent (SIGKILL is delivered asynchronously), so this
/// checks again until a 10 s deadline before it fails.
pub fn assert_gone(marker: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "processes survived: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A `sleep` duration of about a quarter of an hour that is unique to this test process and
/// `tag`, so the processes a test starts can be recognised in /proc.
pub fn long_sleep(tag: u32) -> String {
    format!("9{tag:02}.{}", std::process::id())
}

/// Waits until `condition` holds, checking every 10 ms; fails naming `what` after 30 s. For
/// waiting on something another process does (a file appears, a line is written), never for
/// a fixed time.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A shell loop that waits until the file `path` exists: a child's half of a handshake with
/// a test.
pub fn wait_for_file(path: &Path) -> String {
    format!("while [ ! -e '{}' ]; do sleep 0.01; done", path.display())
}

/// Says that the running test skips itself, and why, where `cargo test` shows it: libtest
/// captures `eprintln!` of a passing test (a skip would read as a plain "ok"), but not what is
/// written to the stderr handle directly.
pub fn skipped(why: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

/// Whether a tool a test needs is installed. In CI (`HERD_REQUIRE_TOOLS=1`) a missing tool
/// fails the test instead of skipping it.
pub fn have(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap()
        .status
        .success();
    if !found {
        assert!(
            std::env::var_os("HERD_REQUIRE_TOOLS").is_none(),
            "{tool} is required (HERD_REQUIRE_TOOLS is set)"
        );
        skipped(&format!("{tool} is not installed"));
    }
    found
}

/// The names of a process's threads (Linux).
pub fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

/// How many spawner threads herd should have on this machine: none where the kernel offers
/// `clone3` with `CLONE_CLEAR_SIGHAND` (Linux 5.5) and no seccomp filter can refuse it (then
/// the event loop spawns), else two.
pub fn expected_spawner_threads() -> usize {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut version = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let kernel = (version.next().unwrap_or(0), version.next().unwrap_or(0));
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let filtered = status
        .lines()
        .any(|l| l.starts_with("Seccomp:") && l.trim_end() != "Seccomp:\t0");
    if kernel >= (5, 5) && !filtered && cfg!(target_arch = "x86_64") {
        0
    } else {
        2
    }
}

/// A tmpfs of a given size, mounted on a fresh directory and unmounted when dropped: a disk
/// that fills up (root only).
pub struct SmallDisk(PathBuf);

impl SmallDisk {
    /// `size` as mount(8) takes it ("1m"). `None` where this process may not mount; in CI as
    /// root (`HERD_REQUIRE_TOOLS=1`) that fails the test instead.
    pub fn mount(size: &str) -> Option<SmallDisk> {
        let dir = std::env::temp_dir().join(format!(
            "herd-small-disk-{}-{}",
            std::process::id(),
            NEXT_DISK.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::fs::remove_dir(&dir);
            assert!(
                std::env::var_os("HERD_REQUIRE_TOOLS").is_none() || !is_root(),
                "root could not mount a tmpfs"
            );
            skipped("cannot mount a tmpfs here");
        }
        ok.then_some(SmallDisk(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

static NEXT_DISK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}
