/* oddexec MODE ...: execs with inputs a careless supervisor would mishandle.
 *
 *   long N PATH ARGV0 [ARGS...]
 *       execve of PATH padded with "./" components (and one extra '/') to exactly
 *       N bytes; the kernel accepts N <= 4095 (PATH_MAX with its NUL) and refuses
 *       longer ones with ENAMETOOLONG.
 *   deepcwd N TARGET ARGV0 [ARGS...]
 *       chdir into nested 200-byte directories under /tmp until the working
 *       directory's path is longer than N bytes, make "./netcheck" a symlink to
 *       TARGET there and execve("./netcheck"): the kernel resolves it relative to
 *       the cwd, while the cwd's absolute path is longer than PATH_MAX.
 *   fault KIND
 *       execve with memory the kernel cannot read, and print "errno=N (TEXT)":
 *       null16 (the path pointer is 0x10), pageend (the path runs, without its
 *       NUL, into an unmapped page), argv (valid path /bin/true, argv pointer 0x10).
 *   held N PATH
 *       N times: fork a child whose main thread execs PATH ["netcheck", "-D"] while
 *       a second thread calls exit_group() and the parent sends SIGKILL, so that
 *       the process is gone while its exec waits for the supervisor. Prints
 *       "held tries=N ran=R eperm=P killed=K exited=E other=O".
 * Exec failures print "oddexec: execve failed: errno=N (TEXT)" and exit 126
 * (EPERM) or 127.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void exec_failed(void) {
    int e = errno;
    printf("oddexec: execve failed: errno=%d (%s)\n", e, strerror(e));
    fflush(stdout);
    exit(e == EPERM ? 126 : 127);
}

static int do_long(int argc, char **argv) {
    if (argc < 5) return 2;
    size_t n = (size_t)atol(argv[2]);
    const char *path = argv[3];
    const char *slash = strrchr(path, '/');
    if (!slash) return 2;
    size_t dir_len = (size_t)(slash - path) + 1; /* keeps the '/' */
    size_t base_len = strlen(slash + 1);
    if (n < dir_len + base_len + 1) return 2;
    char *buf = malloc(n + 1);
    memcpy(buf, path, dir_len);
    size_t at = dir_len, pad = n - dir_len - base_len;
    if (pad % 2) buf[at++] = '/', pad--;
    for (; pad; pad -= 2) buf[at++] = '.', buf[at++] = '/';
    memcpy(buf + at, slash + 1, base_len);
    buf[n] = 0;
    printf("oddexec: path of %zu bytes\n", strlen(buf));
    fflush(stdout);
    execve(buf, &argv[4], environ);
    exec_failed();
    return 127;
}

static int do_deepcwd(int argc, char **argv) {
    if (argc < 5) return 2;
    size_t want = (size_t)atol(argv[2]);
    if (chdir("/tmp") < 0) exec_failed();
    char name[201];
    memset(name, 'd', 200);
    name[200] = 0;
    size_t depth = 4; /* "/tmp" */
    while (depth <= want) {
        if (mkdir(name, 0755) < 0 && errno != EEXIST) exec_failed();
        if (chdir(name) < 0) exec_failed();
        depth += 201;
    }
    unlink("netcheck");
    if (symlink(argv[3], "netcheck") < 0) exec_failed();
    printf("oddexec: cwd is %zu bytes deep\n", depth);
    fflush(stdout);
    execve("./netcheck", &argv[4], environ);
    exec_failed();
    return 127;
}

static int do_fault(const char *kind) {
    char *args[] = {"true", NULL};
    long page = sysconf(_SC_PAGESIZE);
    if (!strcmp(kind, "null16")) {
        syscall(SYS_execve, (char *)16, args, environ);
    } else if (!strcmp(kind, "pageend")) {
        char *two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
        if (two == MAP_FAILED) return 2;
        munmap(two + page, page);
        memset(two, 'a', page);
        memcpy(two + page - 16, "/usr/bin/tcpdump", 16); /* no NUL before the hole */
        syscall(SYS_execve, two + page - 16, args, environ);
    } else if (!strcmp(kind, "argv")) {
        syscall(SYS_execve, "/bin/true", (char **)16, environ);
    } else {
        return 2;
    }
    int e = errno;
    printf("errno=%d (%s)\n", e, strerror(e));
    return 0;
}

static void *exit_soon(void *unused) {
    (void)unused;
    for (volatile int i = 0; i < (rand() % 2000); i++) {
    }
    syscall(SYS_exit_group, 77);
    return NULL;
}

static int do_held(int argc, char **argv) {
    if (argc < 4) return 2;
    long tries = atol(argv[2]);
    const char *path = argv[3];
    long ran = 0, eperm = 0, killed = 0, exited = 0, other = 0;
    int devnull = open("/dev/null", O_WRONLY);
    for (long i = 0; i < tries; i++) {
        pid_t child = fork();
        if (child < 0) { perror("fork"); return 2; }
        if (child == 0) {
            srand((unsigned)i);
            dup2(devnull, 1);
            dup2(devnull, 2);
            pthread_t t;
            pthread_create(&t, NULL, exit_soon, NULL);
            char *args[] = {"netcheck", "-D", NULL};
            execve(path, args, environ);
            _exit(errno == EPERM ? 126 : 127);
        }
        if (i % 3 == 0) kill(child, SIGKILL);
        int status;
        if (waitpid(child, &status, 0) < 0) { perror("waitpid"); return 2; }
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) killed++;
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) ran++;
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 126) eperm++;
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 77) exited++;
        else other++;
    }
    printf("held tries=%ld ran=%ld eperm=%ld killed=%ld exited=%ld other=%ld\n", tries, ran,
           eperm, killed, exited, other);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "long")) return do_long(argc, argv);
    if (!strcmp(argv[1], "deepcwd")) return do_deepcwd(argc, argv);
    if (!strcmp(argv[1], "fault") && argc > 2) return do_fault(argv[2]);
    if (!strcmp(argv[1], "held")) return do_held(argc, argv);
    fprintf(stderr, "usage: oddexec long|deepcwd|fault|held ...\n");
    return 2;
}
