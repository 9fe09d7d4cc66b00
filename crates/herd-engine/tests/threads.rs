//! The thread count does not grow with the number of running jobs. (Alone in its test binary:
//! it counts the threads of the whole process.)
#![cfg(unix)]

use herd_engine::{Event, Herd, Job};

/// Starts `n` jobs that each say "up" and then wait; returns the thread count once all are up.
fn threads_with_running(herd: &Herd, n: usize) -> usize {
    for _ in 0..n {
        herd.submit(
            Job::new("sh")
                .args(["-c", "echo up; exec sleep 60"])
                .stream_output(true),
        )
        .unwrap();
    }
    let mut up = 0;
    while up < n {
        if let Some(Event::Output { .. }) = herd.next_event() {
            up += 1;
        }
    }
    let count = testkit::thread_names(std::process::id()).len();
    herd.cancel_all();
    for _ in herd.events() {}
    count
}

#[test]
fn thread_count_is_the_same_for_2_and_200_running_jobs() {
    let herd = Herd::builder().max_running(1000).build().unwrap();
    let with_2 = threads_with_running(&herd, 2);
    let with_200 = threads_with_running(&herd, 200);
    assert_eq!(with_2, with_200);
    // The test's own thread, the harness's, the loop (which also spawns); where the kernel
    // refuses clone3, two spawner threads.
    let expected = 3 + testkit::expected_spawner_threads();
    assert_eq!(
        with_200,
        expected,
        "{:?}",
        testkit::thread_names(std::process::id())
    );

    // Opening a job's stdin file can block (a FIFO waits for its writer), so such a spawn
    // leaves the loop for a spawner thread, started then.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::write(&input, "from the file").unwrap();
    let r = herd
        .spawn(Job::new("cat").stdin(herd_engine::Stdin::file(&input)))
        .unwrap()
        .wait();
    assert_eq!(r.stdout.to_vec().unwrap(), b"from the file");
    let names = testkit::thread_names(std::process::id());
    assert!(names.iter().any(|n| n == "herd-spawner-0"), "{names:?}");
}
