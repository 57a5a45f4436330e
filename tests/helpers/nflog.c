/* nflog log|queue|manage GROUP: reads packets through netfilter's netlink family,
 * as `tcpdump -i nflog:GROUP` or an NFQUEUE consumer does, without libpcap or
 * libnetfilter_log (a static program any name could have).
 *
 * Opens a NETLINK_NETFILTER socket, binds NFLOG group (or NFQUEUE queue)
 * GROUP with packet copy, and waits up to 5 s for one packet. Prints
 * "captured N bytes" and exits 0 when one arrives; otherwise says what failed
 * ("socket: …", "bind refused: …", "nothing captured") and exits non-zero.
 * The rule that sends packets to the group or queue is the caller's (an
 * iptables NFLOG / NFQUEUE target in the container's network namespace).
 *
 * `manage` does what nft does instead: asks nf_tables for its generation on
 * the same socket family and prints "netfilter management works".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static char buf[65536];

/* Appends one attribute to the message at msg. */
static void attr(struct nlmsghdr *msg, uint16_t type, const void *data, uint16_t len) {
    struct nlattr *a = (struct nlattr *)((char *)msg + NLMSG_ALIGN(msg->nlmsg_len));
    a->nla_type = type;
    a->nla_len = NLA_HDRLEN + len;
    memcpy((char *)a + NLA_HDRLEN, data, len);
    msg->nlmsg_len = NLMSG_ALIGN(msg->nlmsg_len) + NLA_ALIGN(a->nla_len);
}

/* Sends one configuration message and waits for its acknowledgement. */
static int configure(int fd, int queue, uint16_t group, int cmd_attr, const void *cmd,
                     uint16_t cmd_len) {
    char req[256];
    memset(req, 0, sizeof req);
    struct nlmsghdr *msg = (struct nlmsghdr *)req;
    msg->nlmsg_len = NLMSG_LENGTH(sizeof(struct nfgenmsg));
    msg->nlmsg_type = queue ? (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG
                            : (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
    msg->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    struct nfgenmsg *gen = NLMSG_DATA(msg);
    gen->nfgen_family = AF_UNSPEC;
    gen->version = NFNETLINK_V0;
    gen->res_id = htons(group);
    attr(msg, cmd_attr, cmd, cmd_len);
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, req, msg->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        printf("bind refused: send: %s\n", strerror(errno));
        return -1;
    }
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
        printf("bind refused: recv: %s\n", strerror(errno));
        return -1;
    }
    struct nlmsghdr *ack = (struct nlmsghdr *)buf;
    if (ack->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *err = NLMSG_DATA(ack);
        if (err->error != 0) {
            printf("bind refused: %s\n", strerror(-err->error));
            return -1;
        }
    }
    return 0;
}

/* NFT_MSG_GETGEN: the one nf_tables request every nft command starts with. */
static int manage(int fd) {
    char req[64];
    memset(req, 0, sizeof req);
    struct nlmsghdr *msg = (struct nlmsghdr *)req;
    msg->nlmsg_len = NLMSG_LENGTH(sizeof(struct nfgenmsg));
    msg->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | 16 /* NFT_MSG_GETGEN */;
    msg->nlmsg_flags = NLM_F_REQUEST;
    struct nfgenmsg *gen = NLMSG_DATA(msg);
    gen->nfgen_family = AF_UNSPEC;
    gen->version = NFNETLINK_V0;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, req, msg->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0 ||
        recv(fd, buf, sizeof buf, 0) < 0) {
        printf("netfilter management failed: %s\n", strerror(errno));
        return 4;
    }
    struct nlmsghdr *reply = (struct nlmsghdr *)buf;
    if (reply->nlmsg_type == NLMSG_ERROR) {
        printf("netfilter management failed: %s\n",
               strerror(-((struct nlmsgerr *)NLMSG_DATA(reply))->error));
        return 4;
    }
    printf("netfilter management works\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "log") && strcmp(argv[1], "queue") &&
                      strcmp(argv[1], "manage"))) {
        fprintf(stderr, "usage: nflog log|queue|manage GROUP\n");
        return 64;
    }
    int queue = strcmp(argv[1], "queue") == 0;
    uint16_t group = (uint16_t)atoi(argv[2]);
    int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
    if (fd < 0) {
        printf("socket: %s\n", strerror(errno));
        return 2;
    }
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
        printf("socket: bind: %s\n", strerror(errno));
        return 2;
    }
    struct timeval timeout = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (strcmp(argv[1], "manage") == 0) return manage(fd);
    if (queue) {
        struct nfqnl_msg_config_cmd cmd = {.command = NFQNL_CFG_CMD_BIND, .pf = htons(AF_INET)};
        struct nfqnl_msg_config_params params = {.copy_range = htonl(0xffff),
                                                 .copy_mode = NFQNL_COPY_PACKET};
        if (configure(fd, 1, group, NFQA_CFG_CMD, &cmd, sizeof cmd) < 0 ||
            configure(fd, 1, group, NFQA_CFG_PARAMS, &params, sizeof params) < 0)
            return 3;
    } else {
        struct nfulnl_msg_config_cmd cmd = {.command = NFULNL_CFG_CMD_BIND};
        struct nfulnl_msg_config_mode mode = {.copy_range = htonl(0xffff),
                                              .copy_mode = NFULNL_COPY_PACKET};
        if (configure(fd, 0, group, NFULA_CFG_CMD, &cmd, sizeof cmd) < 0 ||
            configure(fd, 0, group, NFULA_CFG_MODE, &mode, sizeof mode) < 0)
            return 3;
    }
    printf("bound %s %u\n", argv[1], group);
    fflush(stdout);
    uint16_t packet_type = queue ? (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET
                                 : (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
    uint16_t payload_attr = queue ? NFQA_PAYLOAD : NFULA_PAYLOAD;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            printf("nothing captured (%s)\n", strerror(errno));
            return 1;
        }
        for (struct nlmsghdr *msg = (struct nlmsghdr *)buf; NLMSG_OK(msg, (size_t)n);
             msg = NLMSG_NEXT(msg, n)) {
            if (msg->nlmsg_type != packet_type) continue;
            int left = msg->nlmsg_len - NLMSG_LENGTH(sizeof(struct nfgenmsg));
            struct nlattr *a =
                (struct nlattr *)((char *)NLMSG_DATA(msg) + NLMSG_ALIGN(sizeof(struct nfgenmsg)));
            while (left >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= left) {
                if ((a->nla_type & NLA_TYPE_MASK) == payload_attr) {
                    printf("captured %d bytes\n", a->nla_len - NLA_HDRLEN);
                    return 0;
                }
                left -= NLA_ALIGN(a->nla_len);
                a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len));
            }
        }
    }
}
