/*
 * sizeclass.c - the size classes served from 64 KiB pages.
 *
 * 16-byte steps up to 128 bytes, then four classes per power of two up to
 * 4 KiB, so that internal waste stays below 25%.  Above 4 KiB a page holds
 * few blocks and its tail is what wastes memory: each class is the largest
 * (multiple of 128) that fits k blocks in a page, for k = 14 down to 2, so
 * that a block costs no more than the 64 KiB / k it takes of its page.
 * (With the classes 5120..28672 spaced as below 4 KiB, Larson's uniform 2-32
 * KiB blocks cost 1.20 times their size in pages; with these, 1.16.)
 * Blocks carry no header: the spacing of blocks in a page is exactly the
 * class size.
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
	/* the largest multiple of 128 that fits k blocks in a page, k = 14..2 */
	4608, 5376, 5888, 6528, 7168, 8192,
	9344, 10880, 13056, 16384, 21760, 32768,
};

/* hak__class_small[(n + 15) >> 4] is the class of every n <= 1024. */
#define C4(x) x, x, x, x
const uint8_t hak__class_small[(1024 >> 4) + 1] = {
	0, 0, 1, 2, 3, 4, 5, 6, 7,   /* 0..128 */
	8, 8, 9, 9, 10, 10, 11, 11,  /* ..256 */
	C4(12), C4(13), C4(14), C4(15),  /* ..512 */
	C4(16), C4(16), C4(17), C4(17), C4(18), C4(18), C4(19), C4(19), /* ..1024 */
};

/* hak__class_mid[(n + 127) >> 7] is the class of every n in (1024, 32768]:
 * above 1 KiB every class size is a multiple of 128, so 128-byte steps are
 * exact.  (Generated from hak__class_size; unit-tested against it.) */
const uint8_t hak__class_mid[(HAK_SMALL_MAX >> 7) + 1] = {
	0, 7, 11, 13, 15, 16, 17, 18, 19, 20, 20, 21, 21, 22, 22, 23,
	23, 24, 24, 24, 24, 25, 25, 25, 25, 26, 26, 26, 26, 27, 27, 27,
	27, 28, 28, 28, 28, 29, 29, 29, 29, 29, 29, 30, 30, 30, 30, 31,
	31, 31, 31, 31, 32, 32, 32, 32, 32, 33, 33, 33, 33, 33, 33, 33,
	33, 34, 34, 34, 34, 34, 34, 34, 34, 34, 35, 35, 35, 35, 35, 35,
	35, 35, 35, 35, 35, 35, 36, 36, 36, 36, 36, 36, 36, 36, 36, 36,
	36, 36, 36, 36, 36, 36, 36, 37, 37, 37, 37, 37, 37, 37, 37, 37,
	37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37, 37,
	37, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38,
	38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38,
	38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 38, 39, 39, 39, 39, 39,
	39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39,
	39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39,
	39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39,
	39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39,
	39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39, 39,
	39,
};

unsigned hak__class_of_large(size_t size)
{
	return hak__class_mid[(size + 127) >> 7];
}

/* Thread cache capacity per class: 128 blocks, and no more than 256 KiB of
 * them, so that a thread caches at most 5.6 MiB in all (with no count of
 * bytes to keep on the fast paths).  (Unit-tested against that rule.) */
const uint8_t hak__tc_cap[HAK_NUM_CLASSES] = {
	128, 128, 128, 128, 128, 128, 128, 128, 128, 128,
	128, 128, 128, 128, 128, 128, 128, 128, 128, 128,
	128, 128, 128, 128, 102, 85, 73, 64, 56, 48,
	44, 40, 36, 32, 28, 24, 20, 16, 12, 8,
};
