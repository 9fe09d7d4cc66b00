//! 10,000 jobs leave no descriptor open and no zombie behind. (Alone in its test binary: the
//! counts are of the whole process.)
#![cfg(unix)]

use herd_engine::{Event, Herd, Job};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Our children, zombies included, from each process's parent pid in /proc.
fn children() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1) == Some(&me.as_str()) {
            found.push(stat);
        }
    }
    found
}

#[test]
fn ten_thousand_jobs_leave_no_descriptor_and_no_zombie() {
    // A file that is not executable: found (a path needs no lookup), but its exec fails in
    // the child, which on Linux herd learns only as the child exits.
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("data");
    std::fs::write(&not_executable, "not a program").unwrap();
    let before = open_fds();
    {
        let herd = Herd::builder().max_running(64).build().unwrap();
        for i in 0..10_000 {
            let job = match i % 10 {
                0 => Job::new("herd-no-such-program"),
                5 => Job::new(&not_executable),
                _ => Job::new("true"),
            };
            herd.submit(job).unwrap();
        }
        let mut finished = 0;
        for event in herd.events() {
            if let Event::Finished(r) = event {
                finished += 1;
                let n = r.id.get() - 1;
                assert_eq!(
                    r.success(),
                    n % 10 != 0 && n % 10 != 5,
                    "job {}: {:?}",
                    r.id,
                    r.outcome
                );
            }
        }
        assert_eq!(finished, 10_000);
    }
    assert_eq!(open_fds(), before, "descriptors left open");
    assert_eq!(children(), Vec::<String>::new(), "children left behind");
}
