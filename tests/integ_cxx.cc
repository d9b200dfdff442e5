/*
 * integ_cxx.cc - C++ new and delete are hakmem's own: every form of
 * operator new and delete resolves to libhakmem (not libstdc++'s wrappers
 * around malloc), allocates from hakmem's classes and spans, honours
 * over-alignment, and keeps the language's failure rules: the new-handler is
 * called until it gives up, then std::bad_alloc is thrown; the nothrow forms
 * return nullptr.
 */
#include "config.h"

#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#include "hakmem.h"
extern "C" {
#include "testutil.h"
}

static void expect_hakmem(void *fn, const char *name)
{
	Dl_info info;
	TU_CHECK(dladdr(fn, &info) && info.dli_fname, "%s: dladdr failed", name);
	TU_CHECK(std::strstr(info.dli_fname, "libhakmem") != nullptr,
		 "%s comes from %s, not libhakmem", name, info.dli_fname);
}

static uint64_t total_allocs()
{
	return tu_hak_total_allocs();
}

struct alignas(512) Wide {
	char c[600];
};

static int handler_calls;
static void handler()
{
	if (++handler_calls == 3)
		std::set_new_handler(nullptr);
}

int main()
{
	tu_require_hakmem_malloc();
	/* every form, by its mangled name: the program's references bind to
	 * the first definition, which must be libhakmem's */
	static const char *const names[] = {
		"_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
		"_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
		"_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
		"_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t",
		"_ZdaPvRKSt9nothrow_t", "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t",
		"_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
		"_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
	};
	for (const char *n : names) {
		void *fn = dlsym(RTLD_DEFAULT, n);
		TU_CHECK(fn != nullptr, "%s is not defined", n);
		expect_hakmem(fn, n);
	}

	/* allocations go through hakmem, and delete gives them back */
	uint64_t before = total_allocs();
	char *a = new char[100];
	int *i = new int(7);
	char *big = new char[1 << 20];
	std::memset(a, 1, 100);
	std::memset(big, 2, 1 << 20);
	TU_CHECK(total_allocs() >= before + 3, "new did not allocate from hakmem");
	TU_CHECK(hak_malloc_usable_size(a) >= 100 && hak_malloc_usable_size(big) >= (1 << 20));
	delete[] a;
	delete i;
	delete[] big;

	/* over-aligned types take the aligned forms */
	Wide *w = new Wide;
	Wide *wa = new Wide[3];
	Wide *wn = new (std::nothrow) Wide;
	TU_CHECK((uintptr_t)w % 512 == 0 && (uintptr_t)wa % 512 == 0 && (uintptr_t)wn % 512 == 0,
		 "over-aligned new: %p %p %p", (void *)w, (void *)wa, (void *)wn);
	delete w;
	delete[] wa;
	delete wn;

	/* failure: no handler -> std::bad_alloc */
	volatile size_t huge = (size_t)1 << 62;
	bool thrown = false;
	try {
		char *x = new char[huge];
		TU_FAIL("new char[2^62] returned %p", (void *)x);
	} catch (const std::bad_alloc &) {
		thrown = true;
	}
	TU_CHECK(thrown);
	/* a handler is called until it removes itself, then std::bad_alloc */
	std::set_new_handler(handler);
	thrown = false;
	try {
		char *x = new char[huge];
		TU_FAIL("new char[2^62] returned %p", (void *)x);
	} catch (const std::bad_alloc &) {
		thrown = true;
	}
	TU_CHECK(thrown && handler_calls == 3, "handler called %d times", handler_calls);
	/* nothrow forms return nullptr */
	TU_CHECK(new (std::nothrow) char[huge] == nullptr);
	thrown = false;
	try {
		void *x = ::operator new(huge, std::align_val_t(64));
		TU_FAIL("aligned operator new(2^62) returned %p", x);
	} catch (const std::bad_alloc &) {
		thrown = true;
	}
	TU_CHECK(thrown);
	TU_CHECK(::operator new(huge, std::align_val_t(64), std::nothrow) == nullptr);
	std::printf("integ_cxx: ok\n");
	return 0;
}
