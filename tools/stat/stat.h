/*
 * stat.h - hakmem-stat: attach to a process's stats segment and show what
 * its allocator is doing.  main.c parses options, segment.c reads and
 * validates segments, render.c prints, watch.c samples, list.c lists and
 * prunes.  Validation, summing and the snapshot text are lib/statfmt.c,
 * shared with the library's HAKMEM_SHOW_STATS summary.
 */
#ifndef HAKMEM_STAT_H
#define HAKMEM_STAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "statfmt.h"

#define PROG "hakmem-stat"
#define EXIT_TROUBLE 1 /* no such process, no or bad segment */
#define EXIT_USAGE 2

#define SHM_DIR "/dev/shm"
#define SEG_FILE_PREFIX "hakmem."
#define PID_LIMIT 4194304 /* PID_MAX_LIMIT on 64-bit Linux */

/* main.c */
struct stat_opts {
	pid_t pid;
	double interval;  /* seconds between samples (watch) */
	long count;       /* samples to take, 0 = until stopped */
	bool watch;
	bool json;
	bool list;
	bool prune;
	bool heap;        /* --heap: the heap profile */
	bool folded;      /* --folded: one line per stack for flame graphs */
	long top;         /* --top: sites shown, 0 = all */
	uint64_t min_bytes; /* --min-bytes: sites with less live are not shown */
	pid_t *prune_pids; /* --prune PID...: only these */
	size_t n_prune_pids;
};
/* Parse a pid argument: 1..PID_LIMIT, decimal digits only; -1 if not. */
pid_t parse_pid(const char *s);
/* One line "hakmem-stat: ..." on stderr. */
void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* segment.c */
enum seg_status {
	SEG_OK,
	SEG_NO_PROCESS,  /* no such process, no segment */
	SEG_NO_SEGMENT,  /* process lives but publishes nothing */
	SEG_STALE,       /* segment left by a dead process (or a reused pid) */
	SEG_OTHER_USER,  /* not ours: not trusted */
	SEG_BAD,         /* not a regular file, wrong mode, damaged, wrong version */
	SEG_NOT_READY,   /* still being created */
	SEG_IO,          /* unexpected system error */
};
/* Read the segment of pid into *snap (a private copy) and validate it.
 * On failure, msg holds one line without the program name. */
enum seg_status seg_read(pid_t pid, struct hak_seg_header *snap, char *msg, size_t cap);
/* The segment's object name under /dev/shm (without the slash). */
void seg_path(pid_t pid, char *out, size_t cap);
/* Does process pid map the object with this device and inode?
 * 1 yes, 0 no, -1 cannot tell. */
int proc_maps_object(pid_t pid, dev_t dev, ino_t ino);
/* Summary of a validated snapshot, with the time and VmRSS filled in. */
void seg_summary(const struct hak_seg_header *snap, struct hak_statsum *out);
uint64_t now_realtime_ns(void);

/* render.c */
void render_snapshot(const struct hak_statsum *s, bool json);
struct rates {
	double seconds; /* over which the rates were taken */
	double allocs, frees, remote_frees, adoptions, pages;
};
void rates_between(const struct hak_statsum *old, const struct hak_statsum *cur,
		   struct rates *r);
void render_watch_tty(const struct hak_statsum *s, const struct rates *r, double interval);
void render_watch_header(void);
void render_watch_line(const struct hak_statsum *s, const struct rates *r);
void render_watch_json(const struct hak_statsum *s, const struct rates *r);
void render_age(char *out, size_t cap, uint64_t seconds);

/* watch.c */
int watch_run(const struct stat_opts *o);

/* heap.c */
int heap_run(const struct stat_opts *o);

/* list.c */
int list_run(bool json);
int prune_run(const pid_t *pids, size_t n);

/* json.c: JSON through jansson.  json_print writes v and a newline to
 * stdout, and releases v. */
json_t *json_from_bytes(const char *s, size_t max);
void json_put_u64(json_t *o, const char *key, uint64_t v); /* an integer under key */
json_t *json_summary(const struct hak_statsum *s);
void json_add_rates(json_t *o, const struct rates *r);
int json_print(json_t *v);

#endif /* HAKMEM_STAT_H */
