/* The floor herd is measured against: one thread, posix_spawn, poll, nothing else.
 *
 *   baseline JOBS COUNT PROGRAM [ARG]...
 *
 * Runs PROGRAM COUNT times, at most JOBS at once, each with its stdout and stderr on pipes
 * that are drained (and discarded) with poll. No bookkeeping beyond a slot per running child:
 * no output kept, no timing, no error reporting beyond a count. Exit status: the number of
 * children that did not exit 0 (at most 100).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct slot {
    pid_t pid;
    int open; /* pipes not yet at EOF */
};

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: baseline JOBS COUNT PROGRAM [ARG]...\n");
        return 2;
    }
    int jobs = atoi(argv[1]);
    long count = atol(argv[2]);
    char **child_argv = argv + 3;
    struct slot *slots = calloc(jobs, sizeof *slots);
    struct pollfd *fds = calloc(2 * jobs, sizeof *fds);
    for (int i = 0; i < 2 * jobs; i++) fds[i].fd = -1;
    static char buf[65536];
    long started = 0, finished = 0, failed = 0;
    int running = 0;
    while (finished < count) {
        for (int s = 0; s < jobs && started < count; s++) {
            if (slots[s].pid != 0) continue;
            int out[2], err[2];
            if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) { perror("pipe2"); return 2; }
            posix_spawn_file_actions_t fa;
            posix_spawn_file_actions_init(&fa);
            posix_spawn_file_actions_adddup2(&fa, out[1], 1);
            posix_spawn_file_actions_adddup2(&fa, err[1], 2);
            pid_t pid;
            int rc = posix_spawn(&pid, child_argv[0], &fa, NULL, child_argv, environ);
            posix_spawn_file_actions_destroy(&fa);
            close(out[1]);
            close(err[1]);
            if (rc != 0) { errno = rc; perror("posix_spawn"); return 2; }
            slots[s].pid = pid;
            slots[s].open = 2;
            fds[2 * s].fd = out[0];
            fds[2 * s].events = POLLIN;
            fds[2 * s + 1].fd = err[0];
            fds[2 * s + 1].events = POLLIN;
            started++;
            running++;
        }
        if (poll(fds, 2 * jobs, -1) < 0) {
            if (errno == EINTR) continue;
            perror("poll");
            return 2;
        }
        for (int i = 0; i < 2 * jobs; i++) {
            if (fds[i].fd < 0 || !fds[i].revents) continue;
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0 || (n < 0 && errno == EINTR)) continue;
            close(fds[i].fd);
            fds[i].fd = -1;
            struct slot *sl = &slots[i / 2];
            if (--sl->open == 0) {
                int status;
                while (waitpid(sl->pid, &status, 0) < 0 && errno == EINTR) {}
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
                sl->pid = 0;
                finished++;
                running--;
            }
        }
    }
    return failed > 100 ? 100 : (int)failed;
}
