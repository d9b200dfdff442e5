/*
 * segment.c - find, read and validate one process's stats segment.
 *
 * Nothing in a segment is trusted before it is validated: the object is
 * checked with fstat (regular file, our uid, mode 0600, plausible size),
 * read with pread into a private snapshot (never mapped, so a file
 * truncated under us cannot raise SIGBUS), and the snapshot is validated
 * by hak__seg_validate.  Every later read comes from the snapshot.
 */
#include "config.h"
#include "stat.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define NOT_READY_TRIES 10
#define NOT_READY_WAIT_NS 20000000L /* 20 ms */

void seg_path(pid_t pid, char *out, size_t cap)
{
	snprintf(out, cap, SHM_DIR "/" SEG_FILE_PREFIX "%ld", (long)pid);
}

uint64_t now_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* 1 the process exists, 0 it does not. */
static int process_exists(pid_t pid)
{
	return kill(pid, 0) == 0 || errno != ESRCH;
}

/* A zombie still answers kill(pid, 0): it has exited all the same. */
static bool is_zombie(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *paren = strrchr(buf, ')'); /* the command may hold ')' */
	return paren && paren[1] == ' ' && paren[2] == 'Z';
}

/* 1 if a line of process pid's /proc/PID/maps satisfies match (given the
 * first 511 bytes of the line), 0 if none does, -1 if the map cannot be
 * read. */
static int proc_maps_find(pid_t pid, bool (*match)(const char *line, const void *arg),
			  const void *arg)
{
	char path[64], line[512];
	snprintf(path, sizeof path, "/proc/%ld/maps", (long)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	int found = 0;
	while (!found && fgets(line, sizeof line, f)) {
		found = match(line, arg);
		/* a line longer than the buffer: skip its rest */
		while (!strchr(line, '\n') && fgets(line, sizeof line, f))
			;
	}
	int bad = ferror(f);
	fclose(f);
	return bad ? -1 : found;
}

static bool maps_object(const char *line, const void *arg)
{
	const struct stat *st = arg;
	unsigned maj, min;
	unsigned long long inode;
	/* start-end perms offset maj:min inode path */
	return sscanf(line, "%*s %*s %*s %x:%x %llu", &maj, &min, &inode) == 3 &&
	       inode == (unsigned long long)st->st_ino && maj == major(st->st_dev) &&
	       min == minor(st->st_dev);
}

int proc_maps_object(pid_t pid, dev_t dev, ino_t ino)
{
	struct stat st = {.st_dev = dev, .st_ino = ino};
	return proc_maps_find(pid, maps_object, &st);
}

/* A line naming a file libhakmem*. */
static bool maps_hakmem(const char *line, const void *arg)
{
	(void)arg;
	const char *slash = strrchr(line, '/');
	return slash && !strncmp(slash + 1, "libhakmem", 9);
}

/* Read up to len bytes at offset 0; the count read, or -1. */
static ssize_t read_all(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static enum seg_status read_once(pid_t pid, struct hak_seg_header *snap, char *msg,
				 size_t cap)
{
	char path[64];
	char name[64];
	seg_path(pid, path, sizeof path);
	snprintf(name, sizeof name, "/" SEG_FILE_PREFIX "%ld", (long)pid);
	/* O_NONBLOCK: a FIFO planted under that name must not hang us */
	int fd = shm_open(name, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT) {
			if (!process_exists(pid)) {
				snprintf(msg, cap, "no such process %ld", (long)pid);
				return SEG_NO_PROCESS;
			}
			if (is_zombie(pid)) {
				snprintf(msg, cap, "process %ld has exited (not yet reaped)",
					 (long)pid);
				return SEG_NO_PROCESS;
			}
			if (proc_maps_find(pid, maps_hakmem, NULL) == 1)
				snprintf(msg, cap,
					 "process %ld uses hakmem but publishes no stats segment "
					 "(HAKMEM_STATS=0, or a forked child not yet 0.1 s old "
					 "or not allocating since)",
					 (long)pid);
			else
				snprintf(msg, cap,
					 "process %ld is not using hakmem (no stats segment %s)",
					 (long)pid, path);
			return SEG_NO_SEGMENT;
		}
		if (e == EACCES) {
			snprintf(msg, cap, "%s: permission denied (owned by another user)", path);
			return SEG_OTHER_USER;
		}
		if (e == ELOOP) {
			snprintf(msg, cap, "%s is a symbolic link, not a stats segment", path);
			return SEG_BAD;
		}
		snprintf(msg, cap, "%s: %s", path, strerror(e));
		return SEG_IO;
	}
	struct stat st;
	enum seg_status rc = SEG_OK;
	if (fstat(fd, &st) != 0) {
		snprintf(msg, cap, "%s: %s", path, strerror(errno));
		rc = SEG_IO;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(msg, cap, "%s is not a regular file", path);
		rc = SEG_BAD;
		goto out;
	}
	if (st.st_uid != geteuid()) {
		snprintf(msg, cap, "%s is owned by another user (uid %ld), not trusted", path,
			 (long)st.st_uid);
		rc = SEG_OTHER_USER;
		goto out;
	}
	if ((st.st_mode & 07777) != 0600) {
		snprintf(msg, cap, "%s has mode %04o, not 0600: not trusted", path,
			 (unsigned)(st.st_mode & 07777));
		rc = SEG_BAD;
		goto out;
	}
	if (!process_exists(pid)) {
		snprintf(msg, cap,
			 "stale stats segment %s of dead process %ld (hakmem-stat --prune "
			 "removes it)",
			 path, (long)pid);
		rc = SEG_STALE;
		goto out;
	}
	/* Read at most one header's worth: a larger object is caught by the
	 * size comparison below without reading it. */
	size_t want = sizeof *snap;
	if ((uint64_t)st.st_size < want)
		want = (size_t)st.st_size;
	ssize_t got = read_all(fd, snap, want);
	if (got < 0) {
		snprintf(msg, cap, "%s: %s", path, strerror(errno));
		rc = SEG_IO;
		goto out;
	}
	char why[160];
	enum hak_segv v = hak__seg_validate(snap, (size_t)got, pid, why, sizeof why);
	if (v == HAK_SEGV_NOT_READY) {
		snprintf(msg, cap, "%s: %s", path, why);
		rc = SEG_NOT_READY;
		goto out;
	}
	if (v != HAK_SEGV_OK) {
		if ((size_t)got < want)
			snprintf(msg, cap, "%s: truncated while being read (%zd of %zu bytes)",
				 path, got, want);
		else
			snprintf(msg, cap, "%s: %s", path, why);
		rc = SEG_BAD;
		goto out;
	}
	if ((uint64_t)st.st_size != snap->total_size) {
		snprintf(msg, cap, "%s: damaged: object has %lld bytes, header says %llu", path,
			 (long long)st.st_size, (unsigned long long)snap->total_size);
		rc = SEG_BAD;
		goto out;
	}
	/* The pid may since have been reused by a process that never mapped
	 * this segment (or the process exec'd a program without hakmem). */
	if (proc_maps_object(pid, st.st_dev, st.st_ino) == 0) {
		snprintf(msg, cap,
			 "stale stats segment %s: process %ld does not map it (pid reused, "
			 "or exec'd another program)",
			 path, (long)pid);
		rc = SEG_STALE;
	}
out:
	close(fd);
	return rc;
}

enum seg_status seg_read(pid_t pid, struct hak_seg_header *snap, char *msg, size_t cap)
{
	enum seg_status rc;
	for (int tries = 0;; tries++) {
		rc = read_once(pid, snap, msg, cap);
		if (rc != SEG_NOT_READY || tries + 1 >= NOT_READY_TRIES)
			break;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = NOT_READY_WAIT_NS};
		nanosleep(&ts, NULL);
	}
	return rc;
}

void seg_summary(const struct hak_seg_header *snap, struct hak_statsum *out)
{
	char status[64];
	hak__statsum_from_seg(out, snap);
	out->now_ns = now_realtime_ns();
	snprintf(status, sizeof status, "/proc/%ld/status", (long)snap->pid);
	out->vm_rss = hak__proc_vmrss(status);
}
