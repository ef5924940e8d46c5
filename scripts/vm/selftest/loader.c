// SPDX-License-Identifier: Apache-2.0
// VM selftest loader: loads and attaches each program kind that the
// project's host kernel refuses, makes it run, and checks that it ran.
//
//   loader PROBES_BPF_O FREPLACE_BPF_O
//
// Prints one "ok"/"not ok" line per check and closes with
// "selftest: N passed, M failed"; exits 1 if any check failed.
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/utsname.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define UNLINK_TARGET "/nonexistent-bpfman-vm-selftest"
#define XDP_PASS_RET 2
#define XDP_TX_RET 3

static int passed, failed;

__attribute__((format(printf, 3, 4)))
static void result(int ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		passed++;
	else
		failed++;
	printf("%s - %s: ", ok ? "ok" : "not ok", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

// Opens PATH with only program PROG set to load, and loads it.
static struct bpf_object *open_only(const char *path, const char *prog, int *err)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	struct bpf_program *p;

	if (!obj) {
		*err = -errno;
		return NULL;
	}
	bpf_object__for_each_program(p, obj)
		bpf_program__set_autoload(p, strcmp(bpf_program__name(p), prog) == 0);
	*err = bpf_object__load(obj);
	if (*err) {
		bpf_object__close(obj);
		return NULL;
	}
	return obj;
}

// A tracing program on do_unlinkat: load, attach, unlink(2), count.
static void check_probe(const char *path, const char *name, const char *prog,
			__u32 idx)
{
	struct bpf_object *obj;
	struct bpf_link *link;
	__u64 hits = 0;
	int err, i;

	obj = open_only(path, prog, &err);
	if (!obj) {
		result(0, name, "load failed: %s", strerror(-err));
		return;
	}
	link = bpf_program__attach(bpf_object__find_program_by_name(obj, prog));
	if (!link) {
		err = -errno;
		result(0, name, "attach failed: %s", strerror(-err));
		bpf_object__close(obj);
		return;
	}
	for (i = 0; i < 3; i++)
		unlink(UNLINK_TARGET); // fails with ENOENT, after do_unlinkat ran
	err = bpf_map__lookup_elem(bpf_object__find_map_by_name(obj, "hits"), &idx,
				   sizeof(idx), &hits, sizeof(hits), 0);
	if (err)
		result(0, name, "reading the hit counter failed: %s", strerror(-err));
	else
		result(hits >= 3, name, "loaded, attached to do_unlinkat, %llu hits after 3 unlink(2)",
		       (unsigned long long)hits);
	bpf_link__destroy(link);
	bpf_object__close(obj);
}

// One test run of the XDP program FD on a zeroed 64-byte frame.
static int xdp_run(int fd, __u32 *retval)
{
	char frame[64] = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame,
		    .data_size_in = sizeof(frame), .repeat = 1);
	int err = bpf_prog_test_run_opts(fd, &opts);

	*retval = opts.retval;
	return err ? -errno : 0;
}

// An extension program replacing xdp_policy() of xdp_main: the mechanism
// of libxdp's (and bpfman's) XDP and TC dispatchers.
static void check_freplace(const char *target_path, const char *ext_path)
{
	const char *name = "freplace";
	struct bpf_object *target, *ext = NULL;
	struct bpf_program *prog;
	struct bpf_link *link;
	__u32 before = 0, during = 0, after = 0;
	int err, fd;

	target = open_only(target_path, "xdp_main", &err);
	if (!target) {
		result(0, name, "loading the XDP target failed: %s", strerror(-err));
		return;
	}
	fd = bpf_program__fd(bpf_object__find_program_by_name(target, "xdp_main"));
	err = xdp_run(fd, &before);
	if (err) {
		result(0, name, "test run of the target failed: %s", strerror(-err));
		goto out;
	}
	ext = bpf_object__open_file(ext_path, NULL);
	if (!ext) {
		result(0, name, "opening the extension failed: %s", strerror(errno));
		goto out;
	}
	prog = bpf_object__find_program_by_name(ext, "new_policy");
	err = bpf_program__set_attach_target(prog, fd, "xdp_policy");
	if (!err)
		err = bpf_object__load(ext);
	if (err) {
		result(0, name, "extension load failed: %s", strerror(-err));
		goto out;
	}
	link = bpf_program__attach_freplace(prog, fd, "xdp_policy");
	if (!link) {
		err = -errno;
		result(0, name, "extension attach failed: %s", strerror(-err));
		goto out;
	}
	err = xdp_run(fd, &during);
	bpf_link__destroy(link);
	if (!err)
		err = xdp_run(fd, &after);
	if (err) {
		result(0, name, "test run failed: %s", strerror(-err));
		goto out;
	}
	printf("# freplace: xdp_main returned %u before, %u while replaced, %u after detach\n",
	       before, during, after);
	result(before == XDP_PASS_RET && during == XDP_TX_RET && after == XDP_PASS_RET, name,
	       "extension replaced xdp_policy() of a loaded XDP program (retval %u while attached)",
	       during);
out:
	bpf_object__close(ext);
	bpf_object__close(target);
}

int main(int argc, char **argv)
{
	struct utsname u;

	if (argc != 3) {
		fprintf(stderr, "usage: %s PROBES_BPF_O FREPLACE_BPF_O\n", argv[0]);
		return 2;
	}
	uname(&u);
	printf("# kernel %s\n", u.release);
	check_probe(argv[1], "fentry", "on_fentry", 0);
	check_probe(argv[1], "fexit", "on_fexit", 1);
	check_probe(argv[1], "kprobe", "on_kprobe", 2);
	check_probe(argv[1], "kretprobe", "on_kretprobe", 3);
	check_freplace(argv[1], argv[2]);
	printf("selftest: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
