/* rtlink promisc IF | flags IF | mirror DEV TARGET | rx IF: the rtnetlink ways to widen
 * a capture, without ip, tc or libmnl (a static program any name could have).
 *
 * promisc IF        sends RTM_NEWLINK with IFF_PROMISC in ifi_flags and ifi_change on a
 *                   NETLINK_ROUTE socket (what `ip link set IF promisc on` sends), prints
 *                   "request: ok" or "request refused: ERR", then what `flags` prints.
 * flags IF          prints "promisc: on" or "promisc: off" (SIOCGIFFLAGS, which reports the
 *                   IFF_PROMISC a user asked for).
 * mirror DEV TARGET sends RTM_NEWTFILTER: a u32 filter matching every packet on DEV's clsact
 *                   egress hook, with a `mirred egress mirror dev TARGET` action (what
 *                   `tc filter add dev DEV egress protocol all u32 match u32 0 0 action
 *                   mirred egress mirror dev TARGET` sends); prints "filter: installed" or
 *                   "filter refused: ERR". The clsact qdisc is the caller's.
 * rx IF             prints "rx IF N": the packets IF received (/proc/net/dev).
 *
 * Exits 0 when the request was sent and answered (whatever the answer), 2 on usage or
 * socket errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/tc_act/tc_mirred.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static char req[1024];
static char buf[8192];

static unsigned ifindex(const char *name) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
        printf("no interface %s: %s\n", name, strerror(errno));
        exit(2);
    }
    close(fd);
    return (unsigned)ifr.ifr_ifindex;
}

static int flags(const char *name) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
        printf("flags: %s\n", strerror(errno));
        return 2;
    }
    close(fd);
    printf("promisc: %s\n", (ifr.ifr_flags & IFF_PROMISC) ? "on" : "off");
    return 0;
}

/* Appends an attribute to msg; returns it (for nests). */
static struct rtattr *attr(struct nlmsghdr *msg, unsigned short type, const void *data,
                           unsigned short len) {
    struct rtattr *a = (struct rtattr *)((char *)msg + NLMSG_ALIGN(msg->nlmsg_len));
    a->rta_type = type;
    a->rta_len = RTA_LENGTH(len);
    if (len) memcpy(RTA_DATA(a), data, len);
    msg->nlmsg_len = NLMSG_ALIGN(msg->nlmsg_len) + RTA_ALIGN(a->rta_len);
    return a;
}

static void end_nest(struct nlmsghdr *msg, struct rtattr *nest) {
    nest->rta_len = (unsigned short)((char *)msg + msg->nlmsg_len - (char *)nest);
}

/* Sends msg to the kernel and prints the answer with `what`. */
static int talk(struct nlmsghdr *msg, const char *what, const char *done) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) {
        printf("%s refused: socket: %s\n", what, strerror(errno));
        return 2;
    }
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    fflush(stdout);
    if (sendto(fd, msg, msg->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        printf("%s refused: send: %s\n", what, strerror(errno));
        return 0;
    }
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
        printf("%s refused: recv: %s\n", what, strerror(errno));
        return 0;
    }
    struct nlmsghdr *ack = (struct nlmsghdr *)buf;
    if (ack->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *err = NLMSG_DATA(ack);
        if (err->error != 0) {
            printf("%s refused: %s\n", what, strerror(-err->error));
            return 0;
        }
    }
    printf("%s: %s\n", what, done);
    close(fd);
    return 0;
}

static int promisc(const char *name) {
    memset(req, 0, sizeof req);
    struct nlmsghdr *msg = (struct nlmsghdr *)req;
    msg->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
    msg->nlmsg_type = RTM_NEWLINK;
    msg->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    struct ifinfomsg *ifi = NLMSG_DATA(msg);
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = (int)ifindex(name);
    ifi->ifi_flags = IFF_PROMISC;
    ifi->ifi_change = IFF_PROMISC;
    int rc = talk(msg, "request", "ok");
    if (rc) return rc;
    return flags(name);
}

static int mirror(const char *dev, const char *target) {
    memset(req, 0, sizeof req);
    struct nlmsghdr *msg = (struct nlmsghdr *)req;
    msg->nlmsg_len = NLMSG_LENGTH(sizeof(struct tcmsg));
    msg->nlmsg_type = RTM_NEWTFILTER;
    msg->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    struct tcmsg *tc = NLMSG_DATA(msg);
    tc->tcm_family = AF_UNSPEC;
    tc->tcm_ifindex = (int)ifindex(dev);
    tc->tcm_parent = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS);
    tc->tcm_info = TC_H_MAKE(1u << 16, htons(ETH_P_ALL));
    attr(msg, TCA_KIND, "u32", 4);
    struct rtattr *options = attr(msg, TCA_OPTIONS, NULL, 0);
    /* One key that every packet matches: 0 & 0 at offset 0. */
    struct {
        struct tc_u32_sel sel;
        struct tc_u32_key key;
    } sel;
    memset(&sel, 0, sizeof sel);
    sel.sel.flags = TC_U32_TERMINAL;
    sel.sel.nkeys = 1;
    attr(msg, TCA_U32_SEL, &sel, sizeof sel);
    struct rtattr *actions = attr(msg, TCA_U32_ACT, NULL, 0);
    struct rtattr *first = attr(msg, 1, NULL, 0);
    attr(msg, TCA_ACT_KIND, "mirred", 7);
    struct rtattr *act_options = attr(msg, TCA_ACT_OPTIONS, NULL, 0);
    struct tc_mirred parms;
    memset(&parms, 0, sizeof parms);
    parms.action = TC_ACT_PIPE;
    parms.eaction = TCA_EGRESS_MIRROR;
    parms.ifindex = ifindex(target);
    attr(msg, TCA_MIRRED_PARMS, &parms, sizeof parms);
    end_nest(msg, act_options);
    end_nest(msg, first);
    end_nest(msg, actions);
    end_nest(msg, options);
    return talk(msg, "filter", "installed");
}

static int rx(const char *name) {
    FILE *f = fopen("/proc/net/dev", "r");
    if (!f) {
        printf("rx: %s\n", strerror(errno));
        return 2;
    }
    char line[512];
    size_t len = strlen(name);
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ') p++;
        if (strncmp(p, name, len) == 0 && p[len] == ':') {
            unsigned long long bytes, packets;
            if (sscanf(p + len + 1, "%llu %llu", &bytes, &packets) == 2) {
                printf("rx %s %llu\n", name, packets);
                fclose(f);
                return 0;
            }
        }
    }
    fclose(f);
    printf("rx: no %s\n", name);
    return 2;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "promisc") == 0) return promisc(argv[2]);
    if (argc == 3 && strcmp(argv[1], "flags") == 0) return flags(argv[2]);
    if (argc == 4 && strcmp(argv[1], "mirror") == 0) return mirror(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "rx") == 0) return rx(argv[2]);
    fprintf(stderr, "usage: rtlink promisc IF | flags IF | mirror DEV TARGET | rx IF\n");
    return 2;
}
