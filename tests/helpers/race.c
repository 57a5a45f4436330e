/* race MODE MS MAX OUT HARMLESS SNIFFER [ARGS...]: the check-then-use race.
 *
 * Thread 1 starts children in a loop (clone with CLONE_VM | CLONE_VFORK, so the
 * child execs from this process's memory) for at most MS milliseconds and MAX
 * tries; thread 2 flips what the exec names between HARMLESS and SNIFFER as fast
 * as it can. Every child runs with stdout and stderr appended to OUT and
 * argv = ["true", ARGS...], so nothing in the argument list names a sniffer.
 *
 *   mem    the path buffer the child passes to execve is rewritten in memory
 *          between HARMLESS and SNIFFER (the name the kernel sees is SNIFFER's)
 *   swap   the path is always /tmp/race/x; x and /tmp/race/y are symlinks to
 *          HARMLESS and SNIFFER, exchanged atomically (renameat2 RENAME_EXCHANGE)
 *
 * Prints "race tries=T exit0=A exit1=B eperm=P enoent=N killed=K other=O":
 * exit0 = the harmless program ran (or a sniffer finished: count its "packets
 * captured" lines in OUT), exit1 = a sniffer ran and failed (tcpdump exits 1 when
 * its capture socket is refused), eperm = refused at exec, killed = SIGKILL (the
 * exec-time backstop), enoent = a torn path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char path_buf[256];
static const char *harmless, *sniffer;
static char **child_argv;
static int out_fd;
static atomic_int stop;
static int swap_mode;

static void *flipper(void *unused) {
    (void)unused;
    size_t hl = strlen(harmless) + 1, sl = strlen(sniffer) + 1;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        if (swap_mode) {
            syscall(SYS_renameat2, AT_FDCWD, "/tmp/race/x", AT_FDCWD, "/tmp/race/y",
                    RENAME_EXCHANGE);
        } else {
            memcpy((char *volatile)path_buf, sniffer, sl);
            for (volatile int i = 0; i < 50; i++) {
            }
            memcpy((char *volatile)path_buf, harmless, hl);
            for (volatile int i = 0; i < 50; i++) {
            }
        }
    }
    return NULL;
}

static int child_main(void *unused) {
    (void)unused;
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    /* This child shares the parent's memory and TLS (errno included) while the
     * parent waits (CLONE_VFORK): only system calls, no buffered I/O. */
    syscall(SYS_execve, swap_mode ? "/tmp/race/x" : path_buf, child_argv, environ);
    int e = errno;
    syscall(SYS_exit, e == EPERM ? 201 : (e == ENOENT ? 202 : 203));
    return 0;
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: race mem|swap MS MAX OUT HARMLESS SNIFFER [ARGS...]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    swap_mode = !strcmp(argv[1], "swap");
    long ms = atol(argv[2]), max = atol(argv[3]);
    out_fd = open(argv[4], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out_fd < 0) { perror("open OUT"); return 2; }
    harmless = argv[5];
    sniffer = argv[6];
    argv[6] = "true";
    child_argv = &argv[6];
    strcpy(path_buf, harmless);
    if (swap_mode) {
        mkdir("/tmp/race", 0755);
        unlink("/tmp/race/x");
        unlink("/tmp/race/y");
        if (symlink(harmless, "/tmp/race/x") < 0 || symlink(sniffer, "/tmp/race/y") < 0) {
            perror("symlink");
            return 2;
        }
    }
    /* OUT is O_CLOEXEC: only the child's dup2 copies (fds 1 and 2) survive its exec. */
    pthread_t t;
    pthread_create(&t, NULL, flipper, NULL);
    static char stack[256 * 1024];
    long tries = 0, exit0 = 0, exit1 = 0, eperm = 0, enoent = 0, killed = 0, other = 0;
    long deadline = now_ms() + ms;
    while (tries < max && now_ms() < deadline) {
        pid_t child = clone(child_main, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD,
                            NULL);
        if (child < 0) { perror("clone"); break; }
        tries++;
        int status;
        if (waitpid(child, &status, 0) < 0) { perror("waitpid"); break; }
        if (WIFSIGNALED(status)) {
            if (WTERMSIG(status) == SIGKILL) killed++;
            else other++;
        } else {
            switch (WEXITSTATUS(status)) {
            case 0: exit0++; break;
            case 1: exit1++; break;
            case 201: eperm++; break;
            case 202: enoent++; break;
            default: other++;
            }
        }
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("race tries=%ld exit0=%ld exit1=%ld eperm=%ld enoent=%ld killed=%ld other=%ld\n",
           tries, exit0, exit1, eperm, enoent, killed, other);
    return 0;
}
