/* Accounting wrapper used by tests/bench for BOTH shims and for runc. containerd finds it first on
 * its PATH under the real binary's name; it moves itself into the cgroup-v1 cpuacct group named
 * for argv[0] in wrap.conf (next to this binary), then runs the real binary.
 *
 * wrap.conf lines:
 *   bin <name> <real binary> <cpuacct cgroup dir>
 *   account             optional: join <cpuacct cgroup dir> first (the CPU pass only: a cgroup-v1
 *                       migration waits for an RCU grace period, milliseconds per process, which
 *                       must not be in the wall-clock passes)
 *   trace <file>        optional: fork, wait, and append one line per invocation to <file>:
 *                       "<name> <pid> <start ns> <end ns> <status> <CPU µs> <argv joined by \x1f>"
 *                       (CLOCK_REALTIME). Without it: exec only, no fork (the ratio passes).
 *   specs <name> <dir>  optional: at `<name> ... start`, if <dir>/<id>.json exists, it replaces
 *                       ./config.json (cwd is the bundle) before the real shim runs. This is how
 *                       the Go shim gets the spec dockerish filled for the same container.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int copy_file(const char *src, const char *dst) {
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return errno == ENOENT ? 0 : -1;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.dkbench-tmp", dst);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) { close(in); return -1; }
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        if (write(out, buf, n) != n) { close(in); close(out); return -1; }
    }
    close(in);
    if (close(out) < 0 || n < 0) return -1;
    return rename(tmp, dst);
}

int main(int argc, char **argv) {
    long long start = now_ns();
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) { perror("dkbench-wrap: readlink"); return 127; }
    self[n] = 0;
    char conf[PATH_MAX];
    snprintf(conf, sizeof conf, "%s/wrap.conf", dirname(self));
    char a0[PATH_MAX];
    snprintf(a0, sizeof a0, "%s", argv[0]);
    const char *name = basename(a0);
    FILE *f = fopen(conf, "r");
    if (!f) { perror("dkbench-wrap: wrap.conf"); return 127; }
    char line[4 * PATH_MAX], k[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
    char real[PATH_MAX] = "", cg[PATH_MAX] = "", trace[PATH_MAX] = "", specs[PATH_MAX] = "";
    int account = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "bin %s %s %s", k, a, b) == 3 && strcmp(k, name) == 0) {
            snprintf(real, sizeof real, "%s", a);
            snprintf(cg, sizeof cg, "%s", b);
        } else if (strncmp(line, "account", 7) == 0) {
            account = 1;
        } else if (sscanf(line, "trace %s", a) == 1) {
            snprintf(trace, sizeof trace, "%s", a);
        } else if (sscanf(line, "specs %s %s", k, a) == 2 && strcmp(k, name) == 0) {
            snprintf(specs, sizeof specs, "%s", a);
        }
    }
    fclose(f);
    if (!real[0]) { fprintf(stderr, "dkbench-wrap: %s not in %s\n", name, conf); return 127; }
    if (account) {
        char procs[PATH_MAX + 32];
        snprintf(procs, sizeof procs, "%s/cgroup.procs", cg);
        int fd = open(procs, O_WRONLY);
        if (fd >= 0) { if (write(fd, "0", 1) < 0) perror("dkbench-wrap: join cgroup"); close(fd); }
        else perror("dkbench-wrap: open cgroup.procs");
    }
    if (specs[0]) {
        int is_start = 0;
        const char *id = NULL;
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "start") == 0) is_start = 1;
            if (strcmp(argv[i], "-id") == 0 && i + 1 < argc) id = argv[i + 1];
        }
        if (is_start && id) {
            char src[PATH_MAX];
            snprintf(src, sizeof src, "%s/%s.json", specs, id);
            if (copy_file(src, "config.json") < 0) { perror("dkbench-wrap: spec"); return 127; }
        }
    }
    if (!trace[0]) {
        execv(real, argv);
        perror("dkbench-wrap: exec");
        return 127;
    }
    pid_t pid = fork();
    if (pid < 0) { perror("dkbench-wrap: fork"); return 127; }
    if (pid == 0) {
        execv(real, argv);
        perror("dkbench-wrap: exec");
        _exit(127);
    }
    int st = 0;
    struct rusage ru = {0};
    while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR) {}
    long long cpu_us = (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    long long end = now_ns();
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    char out[16384];
    int len = snprintf(out, sizeof out, "%s %d %lld %lld %d %lld ", name, (int)getpid(), start, end, code, cpu_us);
    for (int i = 1; i < argc && len < (int)sizeof out - 2; i++)
        len += snprintf(out + len, sizeof out - len, "%s%s", i > 1 ? "\x1f" : "", argv[i]);
    if (len > (int)sizeof out - 2) len = sizeof out - 2;
    out[len++] = '\n';
    int tf = open(trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (tf >= 0) { if (write(tf, out, len) < 0) {} close(tf); }
    return code;
}
