/* holder MODE: a packet socket that outlives the process that made it.
 *
 *   parent    this process opens socket(AF_PACKET, SOCK_RAW, ETH_P_ALL), then a
 *             sibling sharing its file table (clone(CLONE_FILES)) and a forked
 *             child hold it too; all three wait.
 *   sibling   a sibling sharing the file table (clone(CLONE_FILES)) opens the
 *             socket; this process sees it appear in the shared table, forks a
 *             child that inherits it, and both wait. (The enforce backstop kills
 *             the process that made the socket: the sibling.)
 *   getfd     pidfd_getfd(2) on its own pidfd, as a process lifting a capture
 *             socket out of another would.
 *
 * Prints "holder: holding fd N (pids P C)" once the socket is held by the
 * waiting processes, "holder: socket failed: ERRNO-TEXT" (exit 2) when it
 * cannot be made, "holder: no socket appeared" (exit 3) when the sibling's socket
 * never showed up, and for getfd "getfd: ok" or "getfd: failed: ERRNO-TEXT".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static char sibling_stack[64 * 1024];

static void wait_forever(void) {
    for (;;)
        pause();
}

static int open_packet_socket(void) {
    return socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
}

static int sibling_waits(void *arg) {
    (void)arg;
    wait_forever();
    return 0;
}

static int sibling_opens(void *arg) {
    (void)arg;
    if (open_packet_socket() < 0) {
        printf("holder: socket failed: %s\n", strerror(errno));
        fflush(stdout);
    }
    wait_forever();
    return 0;
}

static pid_t clone_files(int (*fn)(void *)) {
    pid_t pid = clone(fn, sibling_stack + sizeof sibling_stack, CLONE_FILES | SIGCHLD, NULL);
    if (pid < 0) {
        printf("holder: clone failed: %s\n", strerror(errno));
        fflush(stdout);
        exit(2);
    }
    return pid;
}

static pid_t fork_waiter(void) {
    pid_t pid = fork();
    if (pid == 0)
        wait_forever();
    return pid;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "parent";
    setvbuf(stdout, NULL, _IONBF, 0);
    if (strcmp(mode, "getfd") == 0) {
        int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
        if (pidfd < 0) {
            printf("getfd: pidfd_open failed: %s\n", strerror(errno));
            return 2;
        }
        int fd = (int)syscall(SYS_pidfd_getfd, pidfd, 0, 0);
        if (fd < 0) {
            printf("getfd: failed: %s\n", strerror(errno));
            return 1;
        }
        printf("getfd: ok\n");
        return 0;
    }
    if (strcmp(mode, "parent") == 0) {
        int fd = open_packet_socket();
        if (fd < 0) {
            printf("holder: socket failed: %s\n", strerror(errno));
            return 2;
        }
        pid_t sibling = clone_files(sibling_waits);
        pid_t child = fork_waiter();
        printf("holder: holding fd %d (pids %d %d)\n", fd, (int)sibling, (int)child);
        wait_forever();
    }
    /* sibling: the socket will take the lowest free fd of the shared table. */
    int probe = dup(0);
    if (probe < 0) {
        printf("holder: dup failed: %s\n", strerror(errno));
        return 2;
    }
    close(probe);
    clone_files(sibling_opens);
    struct timespec step = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 500; i++) {
        if (fcntl(probe, F_GETFD) != -1) {
            pid_t child = fork_waiter();
            printf("holder: holding fd %d (pids %d %d)\n", probe, (int)getpid(), (int)child);
            wait_forever();
        }
        nanosleep(&step, NULL);
    }
    printf("holder: no socket appeared\n");
    return 3;
}
