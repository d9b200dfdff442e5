/*
 * sizeclass.c - the size classes served from 64 KiB pages.
 *
 * 16-byte steps up to 128 bytes, then four classes per power of two up to
 * 32 KiB, so that internal waste stays below 25%.  Blocks carry no header:
 * the spacing of blocks in a page is exactly the class size.
 */
#include "config.h"
#include "internal.h"

const uint32_t hak__class_size[HAK_NUM_CLASSES] = {
	16, 32, 48, 64, 80, 96, 112, 128,
	160, 192, 224, 256,
	320, 384, 448, 512,
	640, 768, 896, 1024,
	1280, 1536, 1792, 2048,
	2560, 3072, 3584, 4096,
	5120, 6144, 7168, 8192,
	10240, 12288, 14336, 16384,
	20480, 24576, 28672, 32768,
};

/* hak__class_small[(n + 15) >> 4] is the class of every n <= 1024. */
#define C4(x) x, x, x, x
const uint8_t hak__class_small[(1024 >> 4) + 1] = {
	0, 0, 1, 2, 3, 4, 5, 6, 7,   /* 0..128 */
	8, 8, 9, 9, 10, 10, 11, 11,  /* ..256 */
	C4(12), C4(13), C4(14), C4(15),  /* ..512 */
	C4(16), C4(16), C4(17), C4(17), C4(18), C4(18), C4(19), C4(19), /* ..1024 */
};

unsigned hak__class_of_large(size_t size)
{
	/* size in (1024, 32768]: four classes per doubling above 1024 */
	unsigned lg = 63u - (unsigned)__builtin_clzll((unsigned long long)(size - 1)); /* 2^lg < size <= 2^(lg+1) */
	size_t step = (size_t)1 << (lg - 2);
	unsigned sub = (unsigned)((size - 1 - ((size_t)1 << lg)) / step); /* 0..3 */
	return 20u + (lg - 10u) * 4u + sub;
}
