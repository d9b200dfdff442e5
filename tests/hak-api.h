/*
 * hak-api.h - force-included (-include) into a test program to build it on
 * the hak_ API of a library without the standard names (--disable-override),
 * as the ThreadSanitizer test does.
 */
#include <malloc.h>
#include <stdlib.h>

#include "hakmem.h"

#define malloc hak_malloc
#define free hak_free
#define calloc hak_calloc
#define realloc hak_realloc
#define malloc_usable_size hak_malloc_usable_size
#define posix_memalign hak_posix_memalign
#define aligned_alloc hak_aligned_alloc
#define memalign hak_memalign
/* malloc is not hakmem here, by design */
#define tu_require_hakmem_malloc tu_require_nothing
static inline void tu_require_nothing(void)
{
}
