/* Interface flags from inside a container, for tests/tests/interfaces.rs.
 *
 *   ifflags show IFACE              prints "promisc=0|1 up=0|1"
 *   ifflags ioctl-promisc IFACE     SIOCSIFFLAGS with IFF_PROMISC on a UDP socket
 *   ifflags ioctl-up IFACE          SIOCSIFFLAGS with IFF_UP on a UDP socket
 *   ifflags race IFACE N            N SIOCSIFFLAGS calls asking for IFF_UP while a
 *                                   second thread keeps flipping IFF_PROMISC in the
 *                                   very request: the check-then-use race
 *
 * Every mode prints one line "<mode>: ok" or "<mode>: <strerror>" and then, for
 * modes naming an interface, the flags read back ("promisc=…"). Static, no libc
 * extras: built with gcc -static by the test harness. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/if.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int udp(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) { printf("socket: %s\n", strerror(errno)); exit(2); }
    return fd;
}

static short get_flags(const char *name) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    int fd = udp();
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) { printf("SIOCGIFFLAGS: %s\n", strerror(errno)); exit(2); }
    close(fd);
    return ifr.ifr_flags;
}

static void show(const char *name) {
    short flags = get_flags(name);
    printf("promisc=%d up=%d\n", !!(flags & IFF_PROMISC), !!(flags & IFF_UP));
}

static void report(const char *mode, int rc) {
    if (rc == 0) printf("%s: ok\n", mode);
    else printf("%s: %s\n", mode, strerror(rc));
}

static int set_by_ioctl(const char *name, short add) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_flags = get_flags(name) | add;
    int fd = udp();
    int rc = ioctl(fd, SIOCSIFFLAGS, &ifr) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

static volatile struct ifreq shared_req;
static volatile int stop;

static void *flipper(void *arg) {
    (void)arg;
    while (!stop) {
        shared_req.ifr_flags |= IFF_PROMISC;
        shared_req.ifr_flags &= ~IFF_PROMISC;
    }
    return NULL;
}

static void race(const char *name, int n) {
    memset((void *)&shared_req, 0, sizeof shared_req);
    strncpy((char *)shared_req.ifr_name, name, IFNAMSIZ - 1);
    shared_req.ifr_flags = get_flags(name) | IFF_UP;
    int fd = udp();
    pthread_t t;
    pthread_create(&t, NULL, flipper, NULL);
    int ok = 0, refused = 0, other = 0, set = 0;
    for (int i = 0; i < n; i++) {
        if (ioctl(fd, SIOCSIFFLAGS, (void *)&shared_req) == 0) ok++;
        else if (errno == EPERM) refused++;
        else other++;
        if (get_flags(name) & IFF_PROMISC) set++;
    }
    stop = 1;
    pthread_join(t, NULL);
    printf("race: ok=%d refused=%d other=%d promisc_seen=%d\n", ok, refused, other, set);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) return 2;
    const char *mode = argv[1], *name = argc > 2 ? argv[2] : "lo";
    if (!strcmp(mode, "show")) {
        show(name);
    } else if (!strcmp(mode, "ioctl-promisc")) {
        report(mode, set_by_ioctl(name, IFF_PROMISC));
        show(name);
    } else if (!strcmp(mode, "ioctl-up")) {
        report(mode, set_by_ioctl(name, IFF_UP));
        show(name);
    } else if (!strcmp(mode, "race")) {
        race(name, argc > 3 ? atoi(argv[3]) : 1000);
        show(name);
    } else {
        return 2;
    }
    return 0;
}
