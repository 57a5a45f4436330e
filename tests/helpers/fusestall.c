/*
 * fusestall MOUNTPOINT CONTENT ANSWERED_OPENS
 *
 * A FUSE file system with one file, /prog (mode 0755, the bytes of CONTENT),
 * spoken over the raw /dev/fuse protocol (linux/fuse.h) so that no libfuse
 * is needed. It answers lookups, attributes and reads, and the first
 * ANSWERED_OPENS opens of /prog; every later open is never answered: the
 * opener waits in the kernel until the server exits (the connection is then
 * aborted and the open fails). That is a server which let a program be
 * executed and then stopped answering, as a build container's FUSE mount
 * can, and the supervisor's own open of the file to judge it is the one that
 * hangs.
 *
 * Prints "ready" once the kernel's INIT is answered and "stalled open N" for
 * each open it holds. Mounted with allow_other (the supervisor opens it as
 * root with dropped capabilities) and default_permissions. The test
 * unmounts; if this process dies the kernel aborts the connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG_INO 2
#define BUF_SIZE (1 << 20) + 4096

static char *content;
static size_t content_len;
static int dev;

static void reply(uint64_t unique, int error, const void *data, size_t len) {
    struct fuse_out_header out;
    char buf[sizeof out + 4096 * 33];
    if (len > sizeof buf - sizeof out) len = sizeof buf - sizeof out;
    out.len = sizeof out + len;
    out.error = error;
    out.unique = unique;
    memcpy(buf, &out, sizeof out);
    if (len) memcpy(buf + sizeof out, data, len);
    if (write(dev, buf, out.len) < 0 && errno != ENOENT) perror("write /dev/fuse");
}

static void fill_attr(uint64_t ino, struct fuse_attr *attr) {
    memset(attr, 0, sizeof *attr);
    attr->ino = ino;
    if (ino == FUSE_ROOT_ID) {
        attr->mode = S_IFDIR | 0755;
        attr->nlink = 2;
    } else {
        attr->mode = S_IFREG | 0755;
        attr->nlink = 1;
        attr->size = content_len;
        attr->blocks = (content_len + 511) / 512;
    }
    attr->blksize = 4096;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: fusestall MOUNTPOINT CONTENT ANSWERED_OPENS\n");
        return 2;
    }
    int answered_opens = atoi(argv[3]);
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror("content"); return 2; }
    fseek(f, 0, SEEK_END);
    content_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    content = malloc(content_len + 1);
    if (!content || fread(content, 1, content_len, f) != content_len) { perror("read content"); return 2; }
    fclose(f);

    dev = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (dev < 0) { perror("/dev/fuse"); return 2; }
    char opts[256];
    snprintf(opts, sizeof opts,
             "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions", dev);
    if (mount("fusestall", argv[1], "fuse.fusestall", MS_NOSUID | MS_NODEV, opts) < 0) {
        perror("mount");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    static char buf[BUF_SIZE];
    int opens = 0;
    for (;;) {
        ssize_t n = read(dev, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR || errno == ENOENT || errno == EAGAIN) continue;
            if (errno == ENODEV) return 0; /* unmounted */
            perror("read /dev/fuse");
            return 1;
        }
        if ((size_t)n < sizeof(struct fuse_in_header)) continue;
        struct fuse_in_header *in = (struct fuse_in_header *)buf;
        void *arg = buf + sizeof *in;
        switch (in->opcode) {
        case FUSE_INIT: {
            struct fuse_init_in *init = arg;
            struct fuse_init_out out;
            memset(&out, 0, sizeof out);
            out.major = FUSE_KERNEL_VERSION;
            out.minor = init->minor < FUSE_KERNEL_MINOR_VERSION ? init->minor : FUSE_KERNEL_MINOR_VERSION;
            out.max_readahead = init->max_readahead;
            out.max_write = 4096;
            out.max_background = 16;
            out.congestion_threshold = 12;
            reply(in->unique, 0, &out, sizeof out);
            printf("ready\n");
            break;
        }
        case FUSE_LOOKUP: {
            const char *name = arg;
            if (in->nodeid != FUSE_ROOT_ID || strcmp(name, "prog") != 0) {
                reply(in->unique, -ENOENT, NULL, 0);
                break;
            }
            struct fuse_entry_out out;
            memset(&out, 0, sizeof out);
            out.nodeid = PROG_INO;
            out.generation = 1;
            out.entry_valid = 3600;
            out.attr_valid = 3600;
            fill_attr(PROG_INO, &out.attr);
            reply(in->unique, 0, &out, sizeof out);
            break;
        }
        case FUSE_GETATTR: {
            struct fuse_attr_out out;
            memset(&out, 0, sizeof out);
            out.attr_valid = 3600;
            fill_attr(in->nodeid, &out.attr);
            reply(in->unique, 0, &out, sizeof out);
            break;
        }
        case FUSE_OPEN: {
            opens++;
            if (opens > answered_opens) {
                /* Never answered: the opener waits until this process exits. */
                printf("stalled open %d (pid %u)\n", opens, in->pid);
                break;
            }
            struct fuse_open_out out;
            memset(&out, 0, sizeof out);
            out.fh = 1;
            out.open_flags = FOPEN_KEEP_CACHE;
            reply(in->unique, 0, &out, sizeof out);
            break;
        }
        case FUSE_OPENDIR: {
            struct fuse_open_out out;
            memset(&out, 0, sizeof out);
            out.fh = 2;
            reply(in->unique, 0, &out, sizeof out);
            break;
        }
        case FUSE_READ: {
            struct fuse_read_in *r = arg;
            size_t len = 0;
            if (in->nodeid == PROG_INO && r->offset < content_len) {
                len = content_len - r->offset;
                if (len > r->size) len = r->size;
            }
            reply(in->unique, 0, len ? content + r->offset : NULL, len);
            break;
        }
        case FUSE_READDIR:
            reply(in->unique, 0, NULL, 0);
            break;
        case FUSE_RELEASE:
        case FUSE_RELEASEDIR:
        case FUSE_FLUSH:
            reply(in->unique, 0, NULL, 0);
            break;
        case FUSE_FORGET:
        case FUSE_BATCH_FORGET:
        case FUSE_INTERRUPT:
            break;
        case FUSE_DESTROY:
            reply(in->unique, 0, NULL, 0);
            return 0;
        default:
            reply(in->unique, -ENOSYS, NULL, 0);
            break;
        }
    }
}
