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

/* Every class size, once: both tables below are built from this list. */
#define HAK_CLASS_SIZES(X)                                                   \
	X(16) X(32) X(48) X(64) X(80) X(96) X(112) X(128)                    \
	X(160) X(192) X(224) X(256)                                          \
	X(320) X(384) X(448) X(512)                                          \
	X(640) X(768) X(896) X(1024)                                         \
	X(1280) X(1536) X(1792) X(2048)                                      \
	X(2560) X(3072) X(3584) X(4096)                                      \
	/* the largest multiple of 128 that fits k blocks in a page, k = 14..2 */ \
	X(4608) X(5376) X(5888) X(6528) X(7168) X(8192)                      \
	X(9344) X(10880) X(13056) X(16384) X(21760) X(32768)

#define HAK_SIZE_ENTRY(bs) bs,
const uint32_t hak__class_size[HAK_NUM_CLASSES] = {HAK_CLASS_SIZES(HAK_SIZE_ENTRY)};

/* Each class's block geometry in a page (hak__block_start_at): the
 * reciprocal of its size, ceil(2^32 / size), and the bound below which the
 * low half of offset * reciprocal marks a block start; hak__page_init
 * copies it into the page's descriptor, hak__heap_init into the heap.
 * (Unit-tested against hak__class_size, at every offset.) */
#define HAK_RECIP(bs) ((((uint64_t)1 << 32) + (bs) - 1) / (bs))
#define HAK_EXCESS(bs) ((bs) * HAK_RECIP(bs) - ((uint64_t)1 << 32))
#define HAK_GEOM_ENTRY(bs) \
	{(uint32_t)HAK_RECIP(bs), \
	 HAK_EXCESS(bs) ? (uint32_t)(HAK_PAGE_SIZE / (bs) * HAK_EXCESS(bs)) : 1},
const struct hak_geom hak__class_geom[HAK_NUM_CLASSES] = {HAK_CLASS_SIZES(HAK_GEOM_ENTRY)};

/* The blocks a page of each class holds. */
#define HAK_CAPACITY_ENTRY(bs) (uint16_t)(HAK_PAGE_SIZE / (bs)),
const uint16_t hak__class_capacity[HAK_NUM_CLASSES] = {HAK_CLASS_SIZES(HAK_CAPACITY_ENTRY)};

/* hak__class_index[(n + 15) >> 4] is the class of every n <= 32768: one
 * lookup on the malloc fast path, in a 2 KiB table (the classes are at
 * least 16 bytes apart, so 16-byte steps are exact). */
const uint8_t hak__class_index[(HAK_SMALL_MAX >> 4) + 1] = {
	[0 ... 1] = 0, [2] = 1, [3] = 2, [4] = 3, [5] = 4, [6] = 5, [7] = 6, [8] = 7,
	[9 ... 10] = 8, [11 ... 12] = 9, [13 ... 14] = 10, [15 ... 16] = 11,
	[17 ... 20] = 12, [21 ... 24] = 13, [25 ... 28] = 14, [29 ... 32] = 15,
	[33 ... 40] = 16, [41 ... 48] = 17, [49 ... 56] = 18, [57 ... 64] = 19,
	[65 ... 80] = 20, [81 ... 96] = 21, [97 ... 112] = 22, [113 ... 128] = 23,
	[129 ... 160] = 24, [161 ... 192] = 25, [193 ... 224] = 26,
	[225 ... 256] = 27, [257 ... 288] = 28, [289 ... 336] = 29,
	[337 ... 368] = 30, [369 ... 408] = 31, [409 ... 448] = 32,
	[449 ... 512] = 33, [513 ... 584] = 34, [585 ... 680] = 35,
	[681 ... 816] = 36, [817 ... 1024] = 37, [1025 ... 1360] = 38,
	[1361 ... 2048] = 39,
};

/* hak__class_mid[(n + 127) >> 7] is the class of every n in (1024, 32768]
 * (the aligned allocations' search starts here):
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

/* Thread cache capacity per class: 64 KiB of blocks for the classes up to
 * 512 bytes (at most 2048 blocks), otherwise 128 blocks and no more than
 * 256 KiB of them; but the classes with five blocks or fewer in a page
 * (13 KiB and up) cache sixteen pages' worth, 1 MiB.  A page of theirs
 * fills in two to five allocations, so a cache of a few blocks sent the
 * heap through its page lists (refill, flush, float, reclaim) on about
 * every other allocation once frees and allocations stopped alternating
 * exactly: on the published Larson at 2-32 KiB that was much of
 * tcmalloc's lead.  At these caps a thread caches at most 9.2 MiB in all
 * (17.2 MiB with the growth of hak__tc_max()), with no count of bytes to
 * keep on the fast paths.  A loop that frees hundreds of small blocks
 * before it allocates them again stays in the cache instead of returning
 * them to their pages and taking them back.  The caches of a heap share
 * one array of HAK_TC_SLOTS pointers, each class's part as large as its
 * hak__tc_max().  (Unit-tested against that rule.) */
const uint16_t hak__tc_cap[HAK_NUM_CLASSES] = {
	2048, 2048, 1365, 1024, 819, 682, 585, 512, 409, 341,
	292, 256, 204, 170, 146, 128, 128, 128, 128, 128,
	128, 128, 128, 128, 102, 85, 73, 64, 56, 48,
	44, 40, 36, 32, 28, 24, 80, 64, 48, 32,
};
