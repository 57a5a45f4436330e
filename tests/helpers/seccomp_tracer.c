/* seccomp_tracer PROG ARGS...: runs PROG under a ptrace tracer that lets every
 * SCMP_ACT_TRACE stop go on.
 *
 * A seccomp profile's SCMP_ACT_TRACE answers ENOSYS only while no tracer asks
 * for seccomp events; a tracer that does (PTRACE_O_TRACESECCOMP) is asked
 * instead, and when it simply continues, the kernel runs the call
 * (kernel/seccomp.c, __seccomp_filter: SECCOMP_RET_TRACE, then the recheck
 * after the tracer, which lets a TRACE result through). Any process in a
 * container may trace its own child, so TRACE is not a refusal.
 *
 * Prints "tracer: N seccomp stops continued" and exits with PROG's status
 * (128+signal when a signal ended it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: seccomp_tracer PROG ARGS...\n"); return 2; }
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t child = fork();
    if (child < 0) { perror("tracer: fork"); return 2; }
    if (child == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0) {
            perror("tracer: PTRACE_TRACEME");
            _exit(2);
        }
        raise(SIGSTOP);
        execv(argv[1], argv + 1);
        perror("tracer: execv");
        _exit(2);
    }
    int status;
    if (waitpid(child, &status, 0) < 0 || !WIFSTOPPED(status)) {
        perror("tracer: first stop");
        return 2;
    }
    if (ptrace(PTRACE_SETOPTIONS, child, NULL,
               (void *)(long)(PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL)) < 0) {
        perror("tracer: PTRACE_SETOPTIONS");
        return 2;
    }
    long stops = 0;
    int deliver = 0;
    for (;;) {
        if (ptrace(PTRACE_CONT, child, NULL, (void *)(long)deliver) < 0) {
            perror("tracer: PTRACE_CONT");
            return 2;
        }
        if (waitpid(child, &status, 0) < 0) { perror("tracer: waitpid"); return 2; }
        if (WIFEXITED(status) || WIFSIGNALED(status)) break;
        deliver = 0;
        if (status >> 8 == (SIGTRAP | (PTRACE_EVENT_SECCOMP << 8))) {
            stops++;                        /* a TRACE rule matched: let it run */
        } else if (WSTOPSIG(status) != SIGTRAP) {
            deliver = WSTOPSIG(status);     /* a real signal: pass it on */
        }                                   /* the SIGTRAP after execve: swallow it */
    }
    printf("tracer: %ld seccomp stops continued\n", stops);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
