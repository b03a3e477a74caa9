/* Accounting wrapper used by tests/bench for BOTH runtimes (and for runc): moves itself into the
 * cgroup-v1 cpuacct group named for argv[0] in wrap.conf (next to this binary), then execs the real
 * binary. No fork: the only cost is one extra execve of this small static binary.
 * wrap.conf lines: "<name> <real binary> <cpuacct cgroup dir>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libgen.h>
#include <limits.h>
#include <fcntl.h>

int main(int argc, char **argv) {
    (void)argc;
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
    char line[3 * PATH_MAX], k[PATH_MAX], real[PATH_MAX], cg[PATH_MAX];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%s %s %s", k, real, cg) == 3 && strcmp(k, name) == 0) { found = 1; break; }
    }
    fclose(f);
    if (!found) { fprintf(stderr, "dkbench-wrap: %s not in %s\n", name, conf); return 127; }
    char procs[PATH_MAX + 32];
    snprintf(procs, sizeof procs, "%s/cgroup.procs", cg);
    int fd = open(procs, O_WRONLY);
    if (fd >= 0) { if (write(fd, "0", 1) < 0) perror("dkbench-wrap: join cgroup"); close(fd); }
    else perror("dkbench-wrap: open cgroup.procs");
    execv(real, argv);
    perror("dkbench-wrap: exec");
    return 127;
}
