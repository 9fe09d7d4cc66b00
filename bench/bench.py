#!/usr/bin/env python3
"""herd's benchmark: workloads W1-W6 side by side with the C baseline and the peers.

Run it with `bench/run` (which builds and installs what it needs); see bench/README.md.
Each workload runs every tool once per round, alternating (A B C, C B A, A B C …), and
reports medians. Timings come from wait4 (wall clock around it); a tool's own peak RSS,
threads and open descriptors come from sampling /proc/PID while it runs.
"""

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Tools:
    def __init__(self, args):
        self.herd = os.path.join(ROOT, "target/profiling/herd")
        self.spawn_cost = os.path.join(ROOT, "target/profiling/examples/spawn_cost")
        self.tiny = os.path.join(args.tools, "tiny")
        self.baseline = os.path.join(args.tools, "baseline")
        self.blockfeed = os.path.join(args.tools, "blockfeed")
        self.writer = os.path.join(args.tools, "writer")
        self.rust_parallel = shutil.which("rust-parallel", path=os.path.join(args.tools, "rp/bin"))
        self.parallel = shutil.which("parallel")
        self.xargs = shutil.which("xargs")


class Sample:
    """Peak RSS (VmHWM), threads and descriptors of one process, sampled while it runs."""

    def __init__(self, pid, interval, count_fds):
        self.pid, self.interval, self.count_fds = pid, interval, count_fds
        self.rss_kb = self.threads = self.fds = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    status = f.read()
                hwm = re.search(r"VmHWM:\s+(\d+)", status)
                threads = re.search(r"Threads:\s+(\d+)", status)
                if hwm:
                    self.rss_kb = max(self.rss_kb, int(hwm.group(1)))
                if threads:
                    self.threads = max(self.threads, int(threads.group(1)))
                if self.count_fds:
                    self.fds = max(self.fds, len(os.listdir(f"/proc/{self.pid}/fd")))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
            self.done.wait(self.interval)

    def stop(self):
        self.done.set()
        self.thread.join()


def measure(argv, stdin_path=None, interval=0.02, count_fds=False, stdout=subprocess.DEVNULL, env=None,
            stdin_piped=False):
    """Runs argv; returns wall s, CPU s (user+system of it and its reaped descendants), and
    the samples. With stdin_piped, stdin_path reaches argv through a pipe from `cat`."""
    start = time.monotonic()
    feeder = None
    if stdin_piped:
        feeder = subprocess.Popen(["cat", stdin_path], stdout=subprocess.PIPE)
        stdin = feeder.stdout
    else:
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                            env=dict(os.environ, **env) if env else None)
    sample = Sample(proc.pid, interval, count_fds)
    err_chunks = []
    reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    sample.stop()
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if stdin_path:
        stdin.close()
    if feeder:
        feeder.wait()
    if proc.returncode != 0:
        err = b"".join(err_chunks).decode(errors="replace")[-2000:]
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {err}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": sample.rss_kb / 1024,
        "threads": sample.threads,
        "fds": sample.fds,
    }


def median(runs, key):
    return statistics.median(r[key] for r in runs)


def rounds(tools, n, label):
    """Runs each (name, fn) once per round, alternating; returns name -> list of results.

    Odd rounds run the tools in reverse order: a tool's place in a round shifts its time on
    this VM (in W3 one build measured 0.76 of the raw drain when always second in its round,
    and 0.93 when the order was shuffled), and reversing gives every tool the same mix of
    places."""
    results = {name: [] for name, _ in tools}
    for r in range(n):
        for name, fn in (tools if r % 2 == 0 else tools[::-1]):
            print(f"  {label} round {r + 1}/{n}: {name}", file=sys.stderr, flush=True)
            results[name].append(fn())
    return results


def input_file(tmp, name, lines):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write("".join(f"{line}\n" for line in lines))
    return path


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def peers(t, jobs, program, extra=()):
    """The command lines of the peers that take their inputs on stdin."""
    cmds = []
    if t.rust_parallel:
        cmds.append(("rust-parallel", [t.rust_parallel, "-j", str(jobs), program, *extra]))
    if t.xargs:
        cmds.append(("xargs -P", [t.xargs, "-P", str(jobs), "-n", "1", program, *extra]))
    if t.parallel:
        cmds.append(("GNU parallel", [t.parallel, "--will-cite", "-j", str(jobs), program, *extra]))
    return cmds


def containment(t):
    """Where herd puts its jobs on this machine: "cgroup" or "process groups"."""
    out = subprocess.run([t.herd, "--shell", "cat /proc/self/cgroup # {}", ":::", "1"],
                         capture_output=True, text=True).stdout
    return "cgroup" if "/herd-" in out else "process groups"


def w1(t, a, tmp, out):
    n, j = a.w1_jobs, 8
    inputs = input_file(tmp, "w1", range(1, n + 1))
    tools = [
        ("C baseline", lambda: measure([t.baseline, str(j), str(n), t.tiny])),
        ("herd", lambda: measure([t.herd, "-j", str(j), t.tiny], inputs)),
    ]
    # What containment costs: the same run with process groups only (herd's level where it
    # may not create cgroups). Only worth a row where the default uses cgroups.
    if containment(t) == "cgroup":
        tools.append(("herd, process groups only", lambda: measure(
            [t.herd, "-j", str(j), t.tiny], inputs, env={"HERD_NO_CGROUP": "1"})))
    for name, argv in peers(t, j, t.tiny):
        if name == "GNU parallel" and not a.w1_gnu:
            continue
        tools.append((name, lambda argv=argv: measure(argv, inputs)))
    res = rounds(tools, a.rounds, "W1")
    base = res["C baseline"]
    rows = []
    for name, runs in res.items():
        wall, cpu = median(runs, "wall"), median(runs, "cpu")
        rows.append([
            name, f"{wall:.2f}", f"{cpu:.2f}", f"{wall / n * 1e6:.0f}",
            f"{wall / median(base, 'wall'):.2f}",
            f"{(cpu - median(base, 'cpu')) / n * 1e6:+.0f}",
        ])
    herd_wall = median(res["herd"], "wall")
    lines = [f"## W1: {n} jobs of a tiny static program at -j {j}", "",
             f"herd's containment here: {containment(t)} (see README, Reliability).", "",
             table(["tool", "wall s", "CPU s", "wall µs/job", "wall ÷ baseline",
                    "CPU µs/job beyond baseline"], rows), ""]
    if "rust-parallel" in res:
        lines.append(f"herd ÷ rust-parallel (wall): {herd_wall / median(res['rust-parallel'], 'wall'):.2f}")
        lines.append("")
    out.append("\n".join(lines))
    return res


def w2(t, a, tmp, out):
    n, secs = a.w2_jobs, a.w2_sleep
    inputs = input_file(tmp, "w2", [secs] * n)
    sleep = shutil.which("sleep")
    tools = [
        ("C baseline", lambda: measure([t.baseline, str(n), str(n), sleep, str(secs)], interval=0.2, count_fds=True)),
        ("herd", lambda: measure([t.herd, "-j", str(n), sleep], inputs, interval=0.2, count_fds=True)),
    ]
    for name, argv in peers(t, n, sleep):
        tools.append((name, lambda argv=argv: measure(argv, inputs, interval=0.2, count_fds=True)))
    res = rounds(tools, a.rounds, "W2")
    rows = [[name, f"{median(r, 'wall'):.2f}", f"{median(r, 'threads'):.0f}",
             f"{median(r, 'rss_mb'):.1f}", f"{median(r, 'fds'):.0f}"] for name, r in res.items()]
    out.append("\n".join([
        f"## W2: {n} jobs sleeping {secs} s, all at once", "",
        table(["tool", "wall s", "peak threads", "peak RSS MB", "peak open descriptors"], rows), ""]))
    return res


def w3(t, a, tmp, out):
    size = a.w3_bytes
    inputs = input_file(tmp, "w3", [size, size])
    def sh(argv):
        return measure(argv, inputs)
    tools = [
        ("C baseline (raw drain)", lambda: measure([t.baseline, "2", "2", t.writer, str(size)])),
        ("herd -u", lambda: sh([t.herd, "-u", "-j", "2", t.writer])),
        ("herd (grouped)", lambda: sh([t.herd, "-j", "2", t.writer])),
    ]
    for name, argv in peers(t, 2, t.writer):
        if name != "xargs -P":  # xargs does not capture: children write to /dev/null directly
            tools.append((name, lambda argv=argv: sh(argv)))
    # Pipe throughput is the noisiest figure on a shared VM (the raw drain alone varies twofold
    # between runs here): W3 takes at least 11 rounds for its medians.
    res = rounds(tools, a.rounds if a.smoke else max(a.rounds, 11), "W3")
    drain = res["C baseline (raw drain)"]
    base = median(drain, "wall")
    rows = []
    for name, r in res.items():
        wall = median(r, "wall")
        # The drain's own time drifts by half between rounds here; a tool's ratio to the drain
        # of the same round (they run next to each other) cancels that drift.
        paired = statistics.median(d["wall"] / t["wall"] for d, t in zip(drain, r))
        rows.append([name, f"{wall:.2f}", f"{2 * size / wall / 1e9:.2f}", f"{base / wall:.2f}",
                     f"{paired:.2f}", f"{median(r, 'rss_mb'):.1f}"])
    out.append("\n".join([
        f"## W3: 2 jobs writing {size / 1e9:g} GB each (output to /dev/null)", "",
        table(["tool", "wall s", "GB/s", "throughput ÷ raw drain", "same, round by round",
               "peak RSS MB"], rows), "",
        "Throughput ÷ raw drain compares median times; round by round is the median of each "
        "round's ratio to the drain run next to it.", ""]))
    return res


def w4(t, a, tmp, out):
    sizes = a.w4_sizes
    tools = []
    for n in sizes:
        inputs = input_file(tmp, f"w4-{n}", range(1, n + 1))
        tools.append((f"herd {n}", lambda n=n, inputs=inputs: measure([t.herd, "-j", "8", t.tiny], inputs)))
    res = rounds(tools, a.rounds, "W4")
    first = median(res[f"herd {sizes[0]}"], "wall") / sizes[0]
    rows = []
    for n in sizes:
        r = res[f"herd {n}"]
        per = median(r, "wall") / n
        rows.append([n, f"{median(r, 'wall'):.2f}", f"{per * 1e6:.0f}", f"{per / first:.2f}",
                     f"{median(r, 'rss_mb'):.1f}"])
    out.append("\n".join([
        "## W4: the run grows (tiny jobs at -j 8)", "",
        table(["jobs", "wall s", "µs/job", "per job ÷ smallest run", "peak RSS MB"], rows), ""]))
    return res


def w5(t, a, tmp, out):
    jobs = a.w5_jobs
    def run(mib):
        r = subprocess.run([t.spawn_cost, str(mib), str(jobs), t.tiny], check=True,
                           capture_output=True, text=True)
        return {"per_job": float(r.stdout.strip())}
    tools = [("small parent", lambda: run(0)), (f"{a.w5_mib} MiB parent", lambda: run(a.w5_mib))]
    res = rounds(tools, a.rounds, "W5")
    small = statistics.median(r["per_job"] for r in res["small parent"])
    rows = []
    for name, r in res.items():
        per = statistics.median(x["per_job"] for x in r)
        rows.append([name, f"{per:.0f}", f"{per / small:.2f}"])
    out.append("\n".join([
        f"## W5: the library spawning {jobs} tiny jobs from a parent with {a.w5_mib} MiB resident", "",
        table(["parent", "µs/job", "÷ small parent"], rows), ""]))
    return res


def parse_block(text):
    """--block's size in bytes, as herd and GNU parallel read it (K, M, G: powers of 1024;
    k, m, g: powers of 1000)."""
    scale = {"k": 10**3, "K": 1 << 10, "m": 10**6, "M": 1 << 20, "g": 10**9, "G": 1 << 30}
    return int(text[:-1]) * scale[text[-1]] if text[-1] in scale else int(text)


def w6(t, a, tmp, out):
    """--pipe and --pipepart: a file of text lines cut into blocks, `wc -l` per block, against
    the limits (one process reading the file, or copying the stream) and GNU parallel."""
    size = a.w6_bytes
    path = os.path.join(tmp, "w6")
    with open(path, "wb") as f:
        line, written = 0, 0
        while written < size:
            chunk = "".join(f"{i} {'x' * (i % 97)}\n" for i in range(line, line + 100_000)).encode()
            chunk = chunk[:size - written]
            f.write(chunk)
            written += len(chunk)
            line += 100_000
    with open(path, "rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))
    result = os.path.join(tmp, "w6.out")

    def counted(argv, piped=False):
        """Runs a `wc -l` per block and checks that the counts add up to the file's."""
        with open(result, "wb") as sink:
            r = measure(argv, path, stdout=sink, stdin_piped=piped)
        with open(result) as f:
            got = sum(int(x.split()[0]) for x in f if x.strip())
        if got != lines:
            raise RuntimeError(f"{argv}: {got} lines counted, {lines} in the file")
        return r

    def limit(argv, piped=False):
        return measure(argv, path, stdin_piped=piped)

    for block in a.w6_blocks:
        w6_block(t, a, out, path, size, block, counted, limit)


def w6_block(t, a, out, path, size, block, counted, limit):
    blk = ["--block", block]
    jobs, bytes_ = os.cpu_count(), parse_block(block)
    tools = [
        ("cat FILE > /dev/null", lambda: limit(["cat", path])),
        ("wc -l FILE", lambda: limit(["wc", "-l", path])),
        ("cat FILE \\| cat > /dev/null", lambda: limit(["cat"], piped=True)),
        ("cat FILE \\| wc -l", lambda: counted(["wc", "-l"], piped=True)),
        ("C floor: splice into pipes", lambda: counted([t.blockfeed, "part", str(jobs), str(bytes_), path, "wc", "-l"])),
        ("herd --pipepart", lambda: counted([t.herd, "--pipepart", "-a", path, *blk, "wc", "-l"])),
        ("herd --pipe", lambda: counted([t.herd, "--pipe", *blk, "wc", "-l"], piped=True)),
    ]
    if t.parallel:
        gnu = [t.parallel, "--will-cite"]
        tools += [
            ("GNU parallel --pipepart", lambda: counted([*gnu, "--pipepart", "-a", path, *blk, "wc", "-l"])),
            ("GNU parallel --pipe", lambda: counted([*gnu, "--pipe", *blk, "wc", "-l"], piped=True)),
        ]
    res = rounds(tools, a.rounds, f"W6 {block}")
    rows = []
    for name, r in res.items():
        wall = median(r, "wall")
        rows.append([name, f"{wall:.2f}", f"{size / wall / 1e9:.2f}", f"{median(r, 'cpu'):.2f}",
                     f"{median(r, 'rss_mb'):.1f}"])

    def ratio(a_name, b_name):
        """a's throughput ÷ b's: the median of each round's ratio (they ran side by side)."""
        if a_name not in res or b_name not in res:
            return "n/a"
        return f"{statistics.median(b['wall'] / x['wall'] for x, b in zip(res[a_name], res[b_name])):.2f}"
    ratios = [
        ["herd --pipepart ÷ cat FILE > /dev/null", ratio("herd --pipepart", "cat FILE > /dev/null"), "≥ 0.8"],
        ["C floor ÷ cat FILE > /dev/null", ratio("C floor: splice into pipes", "cat FILE > /dev/null"), ""],
        ["herd --pipepart ÷ C floor", ratio("herd --pipepart", "C floor: splice into pipes"), ""],
        ["herd --pipe ÷ cat FILE \\| cat", ratio("herd --pipe", "cat FILE \\| cat > /dev/null"), "≥ 0.8"],
        ["herd --pipe ÷ GNU parallel --pipe", ratio("herd --pipe", "GNU parallel --pipe"), "≥ 5"],
        ["herd --pipepart ÷ GNU parallel --pipepart", ratio("herd --pipepart", "GNU parallel --pipepart"), ""],
    ]
    out.append("\n".join([
        f"## W6: --pipe and --pipepart over a {size / 2**30:g} GiB file of text lines, `wc -l` per {block} block", "",
        "Default -j (one job per core). `--pipe` reads the file through a pipe from `cat`; "
        "the C floor (bench/blockfeed.c) is the least a runner feeding blocks through pipes does: "
        "the same cuts, a process per block, each block spliced from the page cache into a 1 MiB "
        "pipe, one thread, nothing captured; "
        "every run's counts are checked to add up to the file's lines. CPU is the tool's and "
        "its jobs' (not the feeding `cat`).", "",
        table(["command", "wall s", "GB/s", "CPU s", "peak RSS MB"], rows), "",
        table(["throughput ratio (round by round)", "measured", "target"], ratios), ""]))
    return res


def syscalls(t, a, tmp, out):
    """System calls per job: strace -f over a run, split into herd's own threads and the
    spawned child before it execs."""
    if not shutil.which("strace"):
        out.append("## System calls per job\n\nstrace is not installed: skipped.\n")
        return
    n = a.syscall_jobs
    inputs = input_file(tmp, "sys", range(1, n + 1))
    trace = os.path.join(tmp, "strace.out")
    with open(inputs, "rb") as stdin:
        subprocess.run(["strace", "-f", "-qq", "-o", trace, t.herd, "-j", "8", t.tiny],
                       stdin=stdin, check=True, stdout=subprocess.DEVNULL)
    call = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()")
    with open(trace) as f:
        lines = [(m, line) for line in f if (m := call.match(line))]
    # The first process is herd; every other process that calls execve is a job's child.
    herd_pid = int(lines[0][0].group(1))
    children = {int(m.group(1)) for m, _ in lines if m.group(3) == "execve"} - {herd_pid}
    execed = set()
    own, child = {}, {}
    for m, line in lines:
        if m.group(2):
            continue  # the second half of a call counted at its start
        pid, name = int(m.group(1)), m.group(3)
        if pid in children:
            # Before its exec the child runs herd's spawn code; after, the job's program.
            if pid not in execed:
                child[name] = child.get(name, 0) + 1
            if name == "execve":
                execed.add(pid)
        else:
            own[name] = own.get(name, 0) + 1
    rows = sorted(own.items(), key=lambda kv: -kv[1])
    total = sum(own.values()) / n
    lines = [f"## System calls per job ({n} tiny jobs at -j 8, strace -f)", "",
             f"In herd's own threads: {total:.1f} per job.", "",
             table(["system call", "per job"], [[k, f"{v / n:.2f}"] for k, v in rows if v / n >= 0.05]), ""]
    crows = sorted(child.items(), key=lambda kv: -kv[1])
    lines += [f"In each child between the spawn and its exec: {sum(child.values()) / n:.1f}.", "",
              table(["system call", "per job"], [[k, f"{v / n:.2f}"] for k, v in crows if v / n >= 0.05]), ""]
    out.append("\n".join(lines))


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1) if m else cpu
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    def version(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return "not installed"
    return cpu, os.cpu_count(), mem, platform.release(), version


def processes_with(marker):
    """Live processes whose command line contains `marker` (zombies have none)."""
    found = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found += 1
        except OSError:
            pass
    return found


def wait_for(condition, seconds):
    """Checks `condition` every 10 ms until it holds or `seconds` pass; returns the time taken
    (None if it never held)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if condition():
            return time.monotonic() - start
        time.sleep(0.01)
    return None


def reliability(t, a, tmp, out):
    """Issue 12's figures: survivors after faults, peak RSS per output mode for one huge line,
    and a full --tmpdir against a roomy one."""
    lines = ["## Reliability", ""]
    # Survivors: herd SIGKILLed with 5 jobs each running a background sleeper; a job whose
    # descendant calls setsid. At both levels of containment.
    rows = []
    for level, env in [("best here", {}), ("process groups", {"HERD_NO_CGROUP": "1"})]:
        env = dict(os.environ, **env)
        marker = f"97{len(rows)}.{os.getpid()}"
        proc = subprocess.Popen(
            [t.herd, "-j", "5", "--shell", f"sleep {marker} & sleep {marker}", ":::", *"12345"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wait_for(lambda: processes_with(f"sleep {marker}") >= 10, 30)
        proc.kill()
        proc.wait()
        gone = wait_for(lambda: processes_with(marker) == 0, 10)
        left_kill = processes_with(marker)
        subprocess.run(["pkill", "-KILL", "-f", marker])
        marker = f"98{len(rows)}.{os.getpid()}"
        subprocess.run([t.herd, "--shell",
                        f"setsid sleep {marker} </dev/null >/dev/null 2>&1 & sleep 0.3 # {{}}", ":::", "1"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wait_for(lambda: processes_with(marker) == 0, 2)
        left_setsid = processes_with(marker)
        subprocess.run(["pkill", "-KILL", "-f", marker])
        rows.append([level, left_kill, f"{gone:.2f}" if gone is not None else "never",
                     left_setsid])
    lines += [table(["containment", "survivors of herd's SIGKILL (10 processes)",
                     "seconds until none", "survivors of a setsid descendant"], rows), ""]
    # Peak RSS per output mode, one job printing one line of `size` bytes.
    size = 300_000_000 if not a.smoke else 3_000_000
    rows = []
    for mode in [[], ["-k"], ["-u"], ["--lb"], ["--tag"], ["--lb", "--tag"],
                 ["--json", "/dev/null"], ["--json-timeline", "--json", "/dev/null"]]:
        r = measure([t.herd, *mode, "--shell",
                     f"head -c {size} /dev/zero | tr '\\0' a; echo # {{}}", ":::", "1"])
        rows.append([" ".join(mode) or "(grouped)", f"{r['rss_mb']:.1f}"])
    lines += [f"Peak RSS of herd (MB, sampled) for one job printing a {size / 1e6:.0f} MB line:", "",
              table(["mode", "peak RSS MB"], rows), ""]
    # A --tmpdir that fills up, against a roomy one: 4 jobs of 20 MB into a 1 MB tmpfs.
    small = os.path.join(tmp, "small")
    roomy = os.path.join(tmp, "roomy")
    os.makedirs(small)
    os.makedirs(roomy)
    if os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small]).returncode == 0:
        try:
            job = [t.herd, "-j", "4", "--shell", "head -c 20000000 /dev/zero # {}", ":::", *"1234"]
            full = measure([job[0], "--tmpdir", small, *job[1:]])
            room = measure([job[0], "--tmpdir", roomy, *job[1:]])
            lines += [f"A full --tmpdir (1 MB tmpfs, 4 jobs of 20 MB): {full['wall']:.2f} s, "
                      f"{full['rss_mb']:.0f} MB peak; a roomy one: {room['wall']:.2f} s, "
                      f"{room['rss_mb']:.0f} MB ({full['wall'] / room['wall']:.1f}x the time).", ""]
        finally:
            subprocess.run(["umount", small])
    else:
        lines += ["A full --tmpdir: not measured (needs root to mount a small tmpfs).", ""]
    out.append("\n".join(lines))


def ssh_lab():
    """The ssh laboratory's directory (.ci/ssh-lab), started if needed and possible."""
    lab = os.environ.get("HERD_SSH_LAB", "/tmp/herd-ssh-lab")
    if not os.path.exists(os.path.join(lab, "ready")):
        if os.geteuid() != 0:
            return None
        subprocess.run([os.path.join(ROOT, ".ci/ssh-lab"), "up"], check=True, stdout=subprocess.DEVNULL)
    return lab


def ssh(t, a, tmp, out):
    """Jobs on two hosts over ssh: herd -S against GNU parallel -S, with and without its -M."""
    lab = ssh_lab()
    if lab is None:
        out.append("## SSH: jobs on other hosts\n\nSkipped: needs root for the ssh laboratory.\n")
        return
    n = a.ssh_jobs
    logins = "4/h1,4/h2"
    ssh_cmd = f"ssh -F {lab}/ssh_config"
    inputs = input_file(tmp, "ssh", range(1, n + 1))
    tools = [("herd", lambda: measure([t.herd, "--ssh", ssh_cmd, "-S", logins, "true"], inputs))]
    if t.parallel:
        base = [t.parallel, "--will-cite", "--ssh", ssh_cmd, "-S", logins]
        tools.append(("GNU parallel -M", lambda: measure(base + ["-M", "true"], inputs)))
        if not a.smoke:
            tools.append(("GNU parallel", lambda: measure(base + ["true"], inputs)))
    res = rounds(tools, a.rounds, "SSH")
    h = res["herd"]
    rows = []
    for name, runs in res.items():
        wall, cpu = median(runs, "wall"), median(runs, "cpu")
        rows.append([name, f"{wall:.2f}", f"{n / wall:.0f}", f"{cpu * 1000 / n:.1f}",
                     f"{wall / median(h, 'wall'):.2f}", f"{cpu / median(h, 'cpu'):.2f}",
                     f"{median(runs, 'rss_mb'):.0f}"])
    out.append(f"## SSH: {n} jobs (`true`) on two hosts over ssh, 4 slots each\n\n"
               "Hosts h1 and h2 of the ssh laboratory (`.ci/ssh-lab`: an sshd in a network namespace "
               "each, one machine). CPU is herd's or parallel's own, with its ssh clients and masters "
               "(not the sshd side).\n\n"
               + table(["tool", "wall s", "jobs/s", "local CPU ms/job", "wall vs herd", "CPU vs herd", "peak RSS MB"],
                       rows) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one round: checks the benchmark runs")
    p.add_argument("--tools", required=True, help="where bench/run put tiny, baseline and rust-parallel")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", default="W1,W2,W3,W4,W5,W6,SYS,REL,SSH")
    p.add_argument("--output", default=os.path.join(ROOT, "bench/RESULTS.md"))
    a = p.parse_args()
    a.w1_jobs, a.w1_gnu = 10000, True
    a.w2_jobs, a.w2_sleep = 1000, 10
    a.w3_bytes = 10**9
    a.w4_sizes = [1000, 10000, 100000]
    a.w5_jobs, a.w5_mib = 2000, 4096
    a.syscall_jobs = 1000
    a.ssh_jobs = 500
    a.w6_bytes, a.w6_blocks = 2 << 30, ["1M", "16M"]
    if a.smoke:
        a.ssh_jobs = 20
        a.w6_bytes, a.w6_blocks = 20 << 20, ["1M"]
        a.rounds = 1
        a.w1_jobs, a.w2_jobs, a.w2_sleep, a.w3_bytes = 200, 50, 1, 10**7
        a.w4_sizes, a.w5_jobs, a.w5_mib, a.syscall_jobs = [100, 300], 100, 64, 50
    t = Tools(a)
    only = set(a.only.upper().split(","))
    out = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="herd-bench-") as tmp:
        for name, fn in [("W1", w1), ("W2", w2), ("W3", w3), ("W4", w4), ("W5", w5), ("W6", w6), ("SYS", syscalls),
                         ("REL", reliability), ("SSH", ssh)]:
            if name in only:
                print(f"{name}…", file=sys.stderr, flush=True)
                fn(t, a, tmp, out)
    cpu, cores, mem, kernel, version = machine()
    herd_version = version([t.herd, "--version"])
    head = [
        "# herd benchmark results" + (" (smoke run: sizes too small to mean anything)" if a.smoke else ""),
        "",
        f"Machine: {cpu}, {cores} cores, {mem:.0f} GiB, Linux {kernel}. "
        f"Run {time.strftime('%Y-%m-%d', time.gmtime(started))}, {a.rounds} rounds, "
        f"{(time.time() - started) / 60:.0f} min; medians.",
        "",
        f"Tools: {herd_version} (release build); C baseline = bench/baseline.c (posix_spawn + poll, "
        f"one thread); {version([t.rust_parallel, '--version']) if t.rust_parallel else 'rust-parallel not installed'}; "
        f"{version([t.xargs, '--version']) if t.xargs else 'xargs not installed'}; "
        f"{version([t.parallel, '--version']) if t.parallel else 'GNU parallel not installed'}.",
        "",
        "Each round runs every tool once, in reverse order every other round; the machine is shared and noisy, so",
        "compare ratios within one run, not numbers across runs. Produced by `bench/run`.",
        "",
    ]
    text = "\n".join(head) + "\n" + "\n".join(out)
    with open(a.output, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
