/*
 * list.c - hakmem-stat --list (the processes with a live segment) and
 * --prune (remove segments whose process is gone).
 *
 * Prune removes only what is provably dead and ours: a segment owned by
 * our uid whose pid does not exist, or whose pid now belongs to a process
 * that does not map it; the name is re-checked (same inode) just before
 * the unlink, so a segment a new process has just created is left alone.
 */
#include "config.h"
#include "stat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FRESH_SECONDS 2 /* a segment younger than this may be mid-creation */

static struct hak_seg_header snap;

/* The pid in a "hakmem.<pid>" directory entry, or -1. */
static pid_t entry_pid(const char *name)
{
	size_t n = strlen(SEG_FILE_PREFIX);
	if (strncmp(name, SEG_FILE_PREFIX, n) != 0)
		return -1;
	return parse_pid(name + n);
}

struct tally {
	unsigned stale, other_user, bad, live;
};

static void list_note(const struct tally *t)
{
	if (t->stale)
		errmsg("%u stale segment%s of dead processes (hakmem-stat --prune removes them)",
		       t->stale, t->stale == 1 ? "" : "s");
	if (t->other_user)
		errmsg("%u segment%s of other users not shown", t->other_user,
		       t->other_user == 1 ? "" : "s");
	if (t->bad)
		errmsg("%u unreadable segment%s not shown", t->bad, t->bad == 1 ? "" : "s");
}

int list_run(bool json)
{
	DIR *d = opendir(SHM_DIR);
	if (!d) {
		errmsg("cannot read " SHM_DIR ": %s", strerror(errno));
		return EXIT_TROUBLE;
	}
	struct tally t = {0};
	char msg[512];
	json_t *procs = json ? json_array() : NULL;
	if (!json)
		printf("%8s  %-16s %14s %12s %8s %9s\n", "pid", "command", "bytes_in_use", "",
		       "threads", "age");
	struct dirent *e;
	while ((e = readdir(d))) {
		pid_t pid = entry_pid(e->d_name);
		if (pid < 0)
			continue;
		enum seg_status rc = seg_read(pid, &snap, msg, sizeof msg);
		if (rc == SEG_STALE) {
			t.stale++;
			continue;
		}
		if (rc == SEG_OTHER_USER) {
			t.other_user++;
			continue;
		}
		if (rc != SEG_OK) {
			t.bad++; /* vanished, damaged, not ready: say why, go on */
			if (rc != SEG_NO_PROCESS && rc != SEG_NO_SEGMENT)
				errmsg("%s", msg);
			continue;
		}
		struct hak_statsum s;
		seg_summary(&snap, &s);
		uint64_t age = s.now_ns > s.start_time_ns
				       ? (s.now_ns - s.start_time_ns) / 1000000000u
				       : 0;
		char comm[sizeof s.comm + 2];
		struct hak_sbuf b = {.p = comm, .len = 0, .cap = sizeof comm};
		if (json) {
			json_t *p = json_object();
			json_object_set_new(p, "pid", json_integer(pid));
			json_object_set_new(p, "comm", json_from_bytes(s.comm, sizeof s.comm));
			json_object_set_new(p, "bytes_in_use", json_integer((json_int_t)s.bytes_in_use));
			json_object_set_new(p, "threads", json_integer((json_int_t)s.threads));
			json_object_set_new(p, "age_s", json_integer((json_int_t)age));
			json_array_append_new(procs, p);
		} else {
			char human[32], agetext[32];
			struct hak_sbuf h = {.p = human, .len = 0, .cap = sizeof human};
			hak__sb_safe_str(&b, s.comm, sizeof s.comm);
			hak__sb_human(&h, s.bytes_in_use);
			render_age(agetext, sizeof agetext, age);
			printf("%8ld  %-16s %14llu %12s %8llu %9s\n", (long)pid, comm,
			       (unsigned long long)s.bytes_in_use, human,
			       (unsigned long long)s.threads, agetext);
		}
		t.live++;
	}
	closedir(d);
	if (json) {
		json_t *o = json_object();
		json_object_set_new(o, "processes", procs);
		json_object_set_new(o, "stale", json_integer(t.stale));
		json_object_set_new(o, "other_users", json_integer(t.other_user));
		json_object_set_new(o, "unreadable", json_integer(t.bad));
		json_print(o);
	}
	fflush(stdout);
	list_note(&t);
	return 0;
}

/* Why the segment of pid may be removed, or NULL to keep it. */
static const char *prune_reason(pid_t pid, const struct stat *st)
{
	if (kill(pid, 0) != 0 && errno == ESRCH)
		return "process gone";
	if (time(NULL) - st->st_ctime < FRESH_SECONDS)
		return NULL;
	if (proc_maps_object(pid, st->st_dev, st->st_ino) == 0)
		return "pid reused by a process that does not map it";
	return NULL;
}

/* 1 removed, 0 kept, -1 failed (message printed). */
static int prune_one(pid_t pid, bool verbose_keep)
{
	char name[64], path[64];
	snprintf(name, sizeof name, "/" SEG_FILE_PREFIX "%ld", (long)pid);
	seg_path(pid, path, sizeof path);
	int fd = shm_open(name, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0) {
		if (verbose_keep)
			errmsg("%s: %s", path, strerror(errno));
		return errno == ENOENT ? 0 : -1;
	}
	struct stat st, again;
	int ok = fstat(fd, &st) == 0;
	close(fd);
	if (!ok || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		if (verbose_keep)
			errmsg("%s: kept (%s)", path,
			       !ok ? strerror(errno) : "not a file of ours");
		return 0;
	}
	const char *why = prune_reason(pid, &st);
	if (!why) {
		if (verbose_keep)
			errmsg("%s: kept (process %ld is alive)", path, (long)pid);
		return 0;
	}
	/* the same object still, not one a new process just made */
	if (stat(path, &again) != 0 || again.st_ino != st.st_ino || again.st_dev != st.st_dev)
		return 0;
	if (shm_unlink(name) != 0) {
		errmsg("cannot remove %s: %s", path, strerror(errno));
		return -1;
	}
	printf("removed %s (%s)\n", path, why);
	return 1;
}

int prune_run(const pid_t *pids, size_t n)
{
	unsigned removed = 0;
	int failed = 0;
	if (n) {
		for (size_t i = 0; i < n; i++) {
			int r = prune_one(pids[i], true);
			removed += r > 0;
			failed |= r < 0;
		}
	} else {
		DIR *d = opendir(SHM_DIR);
		if (!d) {
			errmsg("cannot read " SHM_DIR ": %s", strerror(errno));
			return EXIT_TROUBLE;
		}
		struct dirent *e;
		while ((e = readdir(d))) {
			pid_t pid = entry_pid(e->d_name);
			if (pid < 0)
				continue;
			int r = prune_one(pid, false);
			removed += r > 0;
			failed |= r < 0;
		}
		closedir(d);
	}
	printf("%u stale segment%s removed\n", removed, removed == 1 ? "" : "s");
	fflush(stdout);
	return failed ? EXIT_TROUBLE : 0;
}
