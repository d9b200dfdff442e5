#!/bin/sh
# test-preload-gcc.sh - the compiler under LD_PRELOAD: `gcc -O2 -c' of a
# generated C file (60 functions of nested switches and loops) must produce the same object
# file bytes as without hakmem.  cc1 is a child process that inherits
# LD_PRELOAD; HAKMEM_SHOW_STATS proves that it ran on hakmem.  With g++
# present, a C++ file (std::map, std::string, std::vector: new and delete
# in cc1plus and at run time) is compiled and run too.
. "${HAKMEM_TEST_SRCDIR:-.}/preload-common.sh"

cc=gcc
command -v $cc >/dev/null 2>&1 || skip "gcc not found"
require_preload_works

awk 'BEGIN {
	x = 4242
	print "#include <stddef.h>"
	print "struct rec { int id; double w; const char *name; struct rec *next; };"
	print "static const char *const names[] = {"
	for (i = 0; i < 400; i++)
		printf "\t\"name_%d_%d\",\n", i, (i * 7919) % 1000
	print "};"
	for (f = 0; f < 60; f++) {
		printf "int f%d(struct rec *r, int n, int *a)\n{\n", f
		print "\tint acc = 0, i;"
		print "\tfor (i = 0; i < n; i++) {"
		print "\t\tswitch ((a[i] ^ i) & 15) {"
		for (c = 0; c < 16; c++) {
			x = (x * 69069 + 1) % 4294967296
			printf "\t\tcase %d: acc += a[i] * %d + (r ? r->id : %d); break;\n", c, x % 97, x % 13
		}
		print "\t\t}"
		print "\t\tif (r && (acc & 7) == 3) { r->w += acc * 0.5; r = r->next; }"
		print "\t}"
		if (f > 0)
			printf "\treturn acc + (n > 2 ? f%d(r, n / 2, a + 1) : 0) + (int)(size_t)names[%d];\n}\n", f - 1, f % 400
		else
			print "\treturn acc;\n}"
	}
}' >"$tmp/gen.c"

# -frandom-seed: nothing in the object may depend on the run
same_output gcc-c sh -c "cd '$tmp' && $cc -O2 -frandom-seed=hakmem -c gen.c -o gen.o && od -An -tx1 -v gen.o"

LD_PRELOAD=$lib HAKMEM_SHOW_STATS=1 $cc -O2 -c "$tmp/gen.c" -o "$tmp/gen2.o" 2>"$tmp/stats" ||
	fail "gcc with HAKMEM_SHOW_STATS=1 failed"
grep -q cc1 "$tmp/stats" || {
	head -5 "$tmp/stats" >&2
	fail "HAKMEM_SHOW_STATS printed nothing for cc1: did cc1 run on hakmem?"
}

if command -v g++ >/dev/null 2>&1; then
	cat >"$tmp/gen.cc" <<'CXX'
#include <cstdio>
#include <map>
#include <string>
#include <vector>
int main()
{
	std::map<std::string, std::vector<int>> m;
	unsigned x = 7;
	for (int i = 0; i < 100000; i++) {
		x = x * 1103515245u + 12345u;
		std::string k = "key" + std::to_string(x % 5000);
		m[k].push_back(int(x >> 8));
		if (x % 11 == 0)
			m.erase("key" + std::to_string((x >> 4) % 5000));
	}
	unsigned long h = 0;
	for (auto &kv : m)
		for (int v : kv.second)
			h = h * 31 + unsigned(v) + kv.first.size();
	std::printf("%zu %lu\n", m.size(), h);
	return 0;
}
CXX
	same_output gxx-c sh -c "cd '$tmp' && g++ -O2 -frandom-seed=hakmem -c gen.cc -o gencc.o && od -An -tx1 -v gencc.o"
	g++ -O2 "$tmp/gen.cc" -o "$tmp/gencc" || fail "g++ link failed"
	same_output gxx-run "$tmp/gencc"
fi
exit 0
