/* The floor for --pipe and --pipepart: the least a runner that feeds blocks through pipes does.
 *
 *   blockfeed part JOBS BLOCK FILE PROGRAM [ARG]...   (--pipepart: FILE cut in place)
 *   blockfeed pipe JOBS BLOCK PROGRAM [ARG]...        (--pipe: standard input cut as it comes)
 *
 * Cuts the input into blocks of about BLOCK bytes, each ending at a newline, and runs PROGRAM
 * once per block with the block on its stdin, at most JOBS at once. `part` moves each block
 * from the page cache into the child's pipe with splice (no copy through this process); `pipe`
 * reads a block from stdin into memory and writes it. One thread, epoll, pidfds, pipes widened
 * to 1 MiB as herd's are; no output capture (children write to this process's stdout), no
 * ordering, no error handling beyond giving up. It is a measuring stick, not a tool.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void die(const char *what) {
    perror(what);
    exit(100);
}

struct job {
    pid_t pid;
    int pidfd;
    int pipe;       /* our end of its stdin, -1 once all written */
    off_t at, end;  /* part: the file range still to go */
    char *data;     /* pipe: the block */
    size_t len, done;
};

static char **child_argv;
static int file = -1, ep;

/* The end of the block that nominally ends at `nominal`: just past the next newline. */
static off_t boundary(off_t nominal, off_t size) {
    static char buf[65536];
    if (nominal >= size) return size;
    for (off_t at = nominal; at < size;) {
        ssize_t n = pread(file, buf, sizeof buf, at);
        if (n <= 0) die("pread");
        char *nl = memchr(buf, '\n', n);
        if (nl) return at + (nl - buf) + 1;
        at += n;
    }
    return size;
}

static void start(struct job *j, unsigned slot) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC)) die("pipe2");
    fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    if (posix_spawnp(&j->pid, child_argv[0], &fa, NULL, child_argv, environ)) die("posix_spawnp");
    posix_spawn_file_actions_destroy(&fa);
    close(fds[0]);
    j->pipe = fds[1];
    j->pidfd = syscall(SYS_pidfd_open, j->pid, 0);
    if (j->pidfd < 0) die("pidfd_open");
    /* Events carry the slot's number, doubled, plus one for the pidfd's. */
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLET, .data.u64 = 2 * slot};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, j->pipe, &ev)) die("epoll_ctl");
    struct epoll_event pev = {.events = EPOLLIN, .data.u64 = 2 * slot + 1};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, j->pidfd, &pev)) die("epoll_ctl");
}

/* Writes what the pipe takes; closes it when the block is all in. */
static void feed(struct job *j) {
    while (j->pipe >= 0) {
        ssize_t n;
        if (j->data) n = write(j->pipe, j->data + j->done, j->len - j->done);
        else n = splice(file, &j->at, j->pipe, NULL, j->end - j->at, SPLICE_F_NONBLOCK);
        if (n < 0 && errno == EAGAIN) return;
        if (n < 0 && errno != EPIPE) die("write");
        if (n > 0 && j->data) j->done += n;
        if (n <= 0 || (j->data ? j->done == j->len : j->at == j->end)) {
            epoll_ctl(ep, EPOLL_CTL_DEL, j->pipe, NULL);
            close(j->pipe);
            j->pipe = -1;
            free(j->data);
            j->data = NULL;
        }
    }
}

int main(int argc, char **argv) {
    int part = argc > 1 && !strcmp(argv[1], "part");
    if (argc < (part ? 6 : 5)) {
        fprintf(stderr, "usage: blockfeed part JOBS BLOCK FILE PROGRAM [ARG]...\n"
                        "       blockfeed pipe JOBS BLOCK PROGRAM [ARG]...\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int jobs = atoi(argv[2]);
    size_t block = strtoull(argv[3], NULL, 10);
    off_t size = 0, cut = 0;
    if (part) {
        file = open(argv[4], O_RDONLY | O_CLOEXEC);
        if (file < 0) die(argv[4]);
        size = lseek(file, 0, SEEK_END);
        child_argv = argv + 5;
    } else {
        child_argv = argv + 4;
        fcntl(0, F_SETPIPE_SZ, 1 << 20);
    }
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0) die("epoll_create1");
    struct job *slots = calloc(jobs, sizeof *slots);
    for (int i = 0; i < jobs; i++) slots[i].pipe = -1;
    /* pipe: what was read past the last block's last newline starts the next block. */
    char *carry = NULL;
    size_t carried = 0;
    int running = 0, eof = 0, failed = 0;
    for (;;) {
        for (int i = 0; i < jobs && !eof; i++) {
            struct job *j = &slots[i];
            if (j->pid) continue;
            if (part) {
                if (cut >= size) { eof = 1; break; }
                j->at = cut;
                j->end = cut = boundary(cut + block, size);
            } else {
                char *data = malloc(block + carried);
                if (!data) die("malloc");
                memcpy(data, carry, carried);
                size_t len = carried;
                free(carry);
                carry = NULL;
                while (len < block) {
                    ssize_t n = read(0, data + len, block - len);
                    if (n < 0) die("read");
                    if (n == 0) { eof = 1; break; }
                    len += n;
                }
                size_t keep = len;
                if (!eof) {
                    char *nl = memrchr(data, '\n', len);
                    keep = nl ? (size_t)(nl - data) + 1 : len;
                }
                carried = len - keep;
                if (carried) {
                    carry = malloc(carried);
                    memcpy(carry, data + keep, carried);
                }
                if (keep == 0) { free(data); break; }
                j->data = data;
                j->len = keep;
                j->done = 0;
            }
            start(j, i);
            running++;
            feed(j);
        }
        if (!running) break;
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        /* Pipes first: an exit handled first would leave its pipe's event naming a new job. */
        for (int k = 0; k < n; k++) {
            if (evs[k].data.u64 % 2 == 0) feed(&slots[evs[k].data.u64 / 2]);
        }
        for (int k = 0; k < n; k++) {
            struct job *j = &slots[evs[k].data.u64 / 2];
            if (evs[k].data.u64 % 2 == 0 || !j->pid) continue;
            /* WNOHANG: a stray event for a child still running is skipped, not waited on. */
            siginfo_t info = {0};
            if (waitid(P_PIDFD, j->pidfd, &info, WEXITED | WNOHANG) < 0) die("waitid");
            if (info.si_pid == 0) continue;
            failed += info.si_code != CLD_EXITED || info.si_status != 0;
            epoll_ctl(ep, EPOLL_CTL_DEL, j->pidfd, NULL);
            close(j->pidfd);
            if (j->pipe >= 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, j->pipe, NULL);
                close(j->pipe);
            }
            free(j->data);
            memset(j, 0, sizeof *j);
            j->pipe = -1;
            running--;
        }
    }
    return failed > 100 ? 100 : failed;
}
