/*
 * replay.c - runs the fuzz target over saved inputs without libFuzzer, so
 * that make check replays the seed corpus and the regression inputs with
 * any compiler, and a crash found by the fuzzer can be traced.
 *
 *   fuzz_replay [--trace] [--repeat N [--max-growth-mb M]] FILE|DIR...
 *
 * The files of a directory run in name order (dot files are skipped).
 * --trace prints every operation of the program and its result.
 * --repeat runs each input N times; with --max-growth-mb, it fails if the
 * memory hakmem maps grew by more than M MiB from the end of the first run
 * to the end of the last (pages lost instead of reused).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_alloc.h"
#include "hakmem.h"

static unsigned long inputs;
static unsigned long repeat = 1;
static long max_growth_mb = -1;

static uint64_t mapped_bytes(void)
{
	struct hak_stats st;
	if (hak_stats_get(&st, sizeof st) != 0) {
		fprintf(stderr, "fuzz_replay: hak_stats_get failed\n");
		exit(2);
	}
	return st.mapped_bytes;
}

static void replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	size_t cap = 4096, n = 0;
	unsigned char *buf = malloc(cap);
	size_t got;
	while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap)
			buf = realloc(buf, cap *= 2);
	}
	if (!buf || ferror(f)) {
		fprintf(stderr, "fuzz_replay: %s: cannot read\n", path);
		exit(2);
	}
	fclose(f);
	if (fuzz_alloc_trace)
		fprintf(stderr, "== %s (%zu bytes)\n", path, n);
	LLVMFuzzerTestOneInput(buf, n);
	uint64_t first = mapped_bytes();
	for (unsigned long i = 1; i < repeat; i++)
		LLVMFuzzerTestOneInput(buf, n);
	uint64_t last = mapped_bytes();
	if (max_growth_mb >= 0 && last > first && (last - first) >> 20 > (uint64_t)max_growth_mb) {
		fprintf(stderr, "fuzz_replay: %s: hakmem's mapped memory grew by %llu MiB "
			"over %lu runs (limit %ld MiB)\n", path,
			(unsigned long long)((last - first) >> 20), repeat - 1, max_growth_mb);
		exit(1);
	}
	free(buf);
	inputs++;
}

static int visible(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

static void replay_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	if (!S_ISDIR(st.st_mode)) {
		replay_file(path);
		return;
	}
	struct dirent **names;
	int n = scandir(path, &names, visible, alphasort);
	if (n < 0) {
		fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	for (int i = 0; i < n; i++) {
		size_t len = strlen(path) + strlen(names[i]->d_name) + 2;
		char *file = malloc(len);
		if (!file)
			exit(2);
		snprintf(file, len, "%s/%s", path, names[i]->d_name);
		replay_file(file);
		free(file);
		free(names[i]);
	}
	free(names);
}

static void usage(void)
{
	fprintf(stderr, "usage: fuzz_replay [--trace] [--repeat N [--max-growth-mb M]] "
		"FILE|DIR...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int i = 1;
	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strcmp(argv[i], "--trace"))
			fuzz_alloc_trace = 1;
		else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
			repeat = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--max-growth-mb") && i + 1 < argc)
			max_growth_mb = strtol(argv[++i], NULL, 10);
		else
			usage();
	}
	if (i >= argc || repeat < 1)
		usage();
	for (; i < argc; i++)
		replay_path(argv[i]);
	printf("fuzz_replay: %lu inputs passed\n", inputs);
	return 0;
}
