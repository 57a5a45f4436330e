/*
 * The in-container load of both benches (tests/benches/supervisor_cost/ and
 * exec_latency.rs, through tests/benches/shared/), compiled with
 * `gcc -static -O2` and installed in the test rootfs as /bin/sgbench.
 *
 *   sgbench loop N WARMUP PROG
 *       fork + execve(PROG) + waitpid, WARMUP times untimed then N times timed
 *       (CLOCK_MONOTONIC); prints `s <ns>` per timed exec and a summary line.
 *
 *   sgbench chain START_NS END_NS RATE [I FIRST_NS]
 *       execs itself (no fork: one exec event per step, the cheapest exec there
 *       is) until CLOCK_MONOTONIC passes END_NS. Exec I is due at
 *       START_NS + I / RATE seconds (RATE 0: as fast as it can). The clock is the
 *       host's (runc adds no time namespace), so the bench sets START_NS/END_NS.
 *       The last image prints `chain execs=I first_ns=F last_ns=L`.
 *
 *   sgbench forks START_NS END_NS PROG
 *       fork + execve(PROG) + waitpid, from START_NS until CLOCK_MONOTONIC passes
 *       END_NS, as fast as it can: one short-lived process per exec, as a build
 *       or a shell script makes them. Prints `forks execs=N`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#define SELF "/bin/sgbench"

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until(long long ns) {
    struct timespec ts = { .tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static int do_loop(int argc, char **argv) {
    if (argc < 5) return 2;
    int n = atoi(argv[2]);
    int warmup = atoi(argv[3]);
    const char *prog = argv[4];
    if (n < 1) return 2;
    long long *d = calloc((size_t)n, sizeof *d);
    if (!d) return 2;
    char *child_argv[] = { (char *)prog, NULL };
    char *child_envp[] = { NULL };
    for (int i = -warmup; i < n; i++) {
        long long t0 = now_ns();
        pid_t pid = fork();
        if (pid < 0) { perror("sgbench: fork"); return 2; }
        if (pid == 0) { execve(prog, child_argv, child_envp); _exit(127); }
        int status;
        if (waitpid(pid, &status, 0) < 0) { perror("sgbench: waitpid"); return 2; }
        long long t1 = now_ns();
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "sgbench: %s ended with status %#x\n", prog, status);
            return 3;
        }
        if (i >= 0) d[i] = t1 - t0;
    }
    for (int i = 0; i < n; i++) printf("s %lld\n", d[i]);
    printf("loop n=%d done\n", n);
    return 0;
}

static int do_chain(int argc, char **argv) {
    if (argc < 5) return 2;
    long long start = atoll(argv[2]);
    long long end = atoll(argv[3]);
    double rate = atof(argv[4]);
    long long i = argc > 5 ? atoll(argv[5]) : 0;
    long long first = argc > 6 ? atoll(argv[6]) : 0;
    long long due = rate > 0 ? start + (long long)((double)i * 1e9 / rate) : start;
    if (due > now_ns()) sleep_until(due);
    long long now = now_ns();
    if (now >= end) {
        printf("chain execs=%lld first_ns=%lld last_ns=%lld\n", i, first, now);
        return 0;
    }
    if (i == 0) first = now;
    char next[32], first_text[32];
    snprintf(next, sizeof next, "%lld", i + 1);
    snprintf(first_text, sizeof first_text, "%lld", first);
    char *args[] = { SELF, "chain", argv[2], argv[3], argv[4], next, first_text, NULL };
    char *envp[] = { NULL };
    execve(SELF, args, envp);
    perror("sgbench: execve");
    return 1;
}

static int do_forks(int argc, char **argv) {
    if (argc < 5) return 2;
    long long start = atoll(argv[2]);
    long long end = atoll(argv[3]);
    char *child_argv[] = { argv[4], NULL };
    char *child_envp[] = { NULL };
    if (start > now_ns()) sleep_until(start);
    long long n = 0;
    while (now_ns() < end) {
        pid_t pid = fork();
        if (pid < 0) { perror("sgbench: fork"); return 2; }
        if (pid == 0) { execve(argv[4], child_argv, child_envp); _exit(127); }
        int status;
        if (waitpid(pid, &status, 0) < 0) { perror("sgbench: waitpid"); return 2; }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "sgbench: %s ended with status %#x\n", argv[4], status);
            return 3;
        }
        n++;
    }
    printf("forks execs=%lld\n", n);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && argv[1][0] == 'l') return do_loop(argc, argv);
    if (argc > 1 && argv[1][0] == 'f') return do_forks(argc, argv);
    if (argc > 1 && argv[1][0] == 'c') return do_chain(argc, argv);
    fprintf(stderr, "usage: sgbench loop N WARMUP PROG | chain START_NS END_NS RATE | forks START_NS END_NS PROG\n");
    return 2;
}
