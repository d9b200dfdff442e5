/*
 * lran2.h - the random generator of the published Larson and xmalloc-test
 * programs, for the workloads that reproduce them.
 */
#ifndef HAKMEM_BENCH_LRAN2_H
#define HAKMEM_BENCH_LRAN2_H

/*
 * The published program's generator (Wolfram Gloger's lran2): a linear
 * congruential sequence x' = (1366 x + 150889) mod 714025, the constants of
 * Numerical Recipes, read through a 97-entry Bays-Durham shuffle table.
 * Reproduced so that a seed names the same victims and sizes as in the
 * published programs; it also costs what theirs costs per draw.
 */
#define LR_MOD 714025L
#define LR_MUL 1366L
#define LR_INC 150889L
#define LR_TABLE 97

struct lr_gen {
	long out, state;
	long table[LR_TABLE];
};

static inline void lr_seed(struct lr_gen *g, long seed)
{
	long x = (LR_INC - seed) % LR_MOD;
	if (x < 0)
		x = -x;
	for (int i = 0; i < LR_TABLE; i++) {
		x = (LR_MUL * x + LR_INC) % LR_MOD;
		g->table[i] = x;
	}
	g->state = (LR_MUL * x + LR_INC) % LR_MOD;
	g->out = g->state;
}

static inline long lr_next(struct lr_gen *g)
{
	int slot = (int)(g->out % LR_TABLE);
	g->out = g->table[slot];
	g->state = (LR_MUL * g->state + LR_INC) % LR_MOD;
	g->table[slot] = g->state;
	return g->out;
}

#endif /* HAKMEM_BENCH_LRAN2_H */
