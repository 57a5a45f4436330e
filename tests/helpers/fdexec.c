/* fdexec MODE PATH ARGV0 [ARGS...]: run PATH without naming it in execve(2).
 *
 * The new program gets argv = [ARGV0, ARGS...]. On failure prints
 * "fdexec: MODE failed: ERRNO-TEXT" and exits 126 (EPERM) or 127 (other).
 *
 *   execveat-dir     execveat(open(dirname(PATH)), basename(PATH), ..., 0)
 *   execveat-empty   execveat(open(PATH, O_PATH), "", ..., AT_EMPTY_PATH)
 *   fexecve          fexecve(open(PATH, O_RDONLY), ...)
 *   procfd           execve("/proc/self/fd/N") of open(PATH, O_RDONLY)
 *   memfd-fexecve    PATH's bytes copied into memfd_create("netcheck"), fexecve
 *   memfd-procfd     the same memfd executed as "/proc/self/fd/N"
 *   deleted-fexecve  PATH copied to /tmp, opened, unlinked, then fexecve: the file
 *                    has no name any more when it is executed
 *   execve32         execve(PATH) through the i386 entry point (int $0x80, x86-64
 *                    with IA32 emulation), path and argv in 32-bit memory
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

static const char *mode;

static void fail(const char *step) {
    int e = errno;
    printf("fdexec: %s: %s failed: %s\n", mode, step, strerror(e));
    fflush(stdout);
    exit(e == EPERM ? 126 : 127);
}

static void copy_fd(int from, int to) {
    char buf[65536];
    for (;;) {
        ssize_t n = read(from, buf, sizeof buf);
        if (n < 0) fail("read");
        if (n == 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(to, buf + off, (size_t)(n - off));
            if (w < 0) fail("write");
            off += w;
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: fdexec MODE PATH ARGV0 [ARGS...]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    mode = argv[1];
    const char *path = argv[2];
    char **args = &argv[3];
    char proc[64];
    if (!strcmp(mode, "execveat-dir")) {
        char *d = strdup(path), *b = strdup(path);
        int dir = open(dirname(d), O_PATH | O_DIRECTORY);
        if (dir < 0) fail("open(dir)");
        syscall(SYS_execveat, dir, basename(b), args, environ, 0);
        fail("execveat(dirfd, name)");
    } else if (!strcmp(mode, "execveat-empty")) {
        int fd = open(path, O_PATH);
        if (fd < 0) fail("open(O_PATH)");
        syscall(SYS_execveat, fd, "", args, environ, AT_EMPTY_PATH);
        fail("execveat(fd, \"\", AT_EMPTY_PATH)");
    } else if (!strcmp(mode, "fexecve")) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) fail("open");
        fexecve(fd, args, environ);
        fail("fexecve");
    } else if (!strcmp(mode, "procfd")) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) fail("open");
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        execve(proc, args, environ);
        fail("execve(/proc/self/fd/N)");
    } else if (!strcmp(mode, "memfd-fexecve") || !strcmp(mode, "memfd-procfd")) {
        int src = open(path, O_RDONLY);
        if (src < 0) fail("open");
        int mem = memfd_create("netcheck", 0);
        if (mem < 0) fail("memfd_create");
        copy_fd(src, mem);
        close(src);
        if (!strcmp(mode, "memfd-fexecve")) {
            fexecve(mem, args, environ);
            fail("fexecve(memfd)");
        }
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", mem);
        execve(proc, args, environ);
        fail("execve(/proc/self/fd/memfd)");
    } else if (!strcmp(mode, "deleted-fexecve")) {
        char tmp[] = "/tmp/.fdexec-XXXXXX";
        int src = open(path, O_RDONLY);
        if (src < 0) fail("open");
        int w = mkstemp(tmp);
        if (w < 0) fail("mkstemp");
        copy_fd(src, w);
        if (fchmod(w, 0755) < 0) fail("fchmod");
        close(w);
        close(src);
        /* A writer must be closed before exec (ETXTBSY); reopen read-only. */
        int fd = open(tmp, O_RDONLY);
        if (fd < 0) fail("reopen");
        if (unlink(tmp) < 0) fail("unlink");
        fexecve(fd, args, environ);
        fail("fexecve(deleted)");
    }
#if defined(__x86_64__)
    else if (!strcmp(mode, "execve32")) {
        char *low = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
        if (low == MAP_FAILED) fail("mmap(MAP_32BIT)");
        unsigned *argv32 = (unsigned *)low;
        char *strings = low + 4096;
        int n = 0;
        for (char **a = args; *a && n < 64; a++, n++) {
            size_t len = strlen(*a) + 1;
            memcpy(strings, *a, len);
            argv32[n] = (unsigned)(unsigned long)strings;
            strings += len;
        }
        argv32[n] = 0;
        size_t len = strlen(path) + 1;
        memcpy(strings, path, len);
        long r;
        __asm__ volatile("int $0x80"
                         : "=a"(r)
                         : "a"(11 /* i386 execve */), "b"((unsigned long)strings),
                           "c"((unsigned long)argv32), "d"(0)
                         : "memory");
        errno = (int)-r;
        fail("i386 execve");
    }
#endif
    fprintf(stderr, "fdexec: unknown mode %s\n", mode);
    return 2;
}
