/*
 * replay.c - runs the fuzz target over saved inputs without libFuzzer, so
 * that make check replays the seed corpus and the regression inputs with
 * any compiler, and a crash found by the fuzzer can be traced.
 *
 *   fuzz_replay [--trace] FILE|DIR...
 *
 * The files of a directory run in name order (dot files are skipped).
 * --trace prints every operation of the program and its result.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_alloc.h"

static unsigned long inputs;

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

int main(int argc, char **argv)
{
	int i = 1;
	if (i < argc && !strcmp(argv[i], "--trace")) {
		fuzz_alloc_trace = 1;
		i++;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: fuzz_replay [--trace] FILE|DIR...\n");
		return 2;
	}
	for (; i < argc; i++)
		replay_path(argv[i]);
	printf("fuzz_replay: %lu inputs passed\n", inputs);
	return 0;
}
