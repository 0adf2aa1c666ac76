/*
 * vec.c - sorted vectors (see vec.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vec.h"

/* Capacity of a vector's first allocation: the tables start small and
 * double. */
#define MFSD_VEC_INITIAL_CAP 16u

int mfsd_vec_reserve(void **v, size_t *cap, size_t need, size_t size)
{
	size_t ncap = *cap ? *cap : MFSD_VEC_INITIAL_CAP;
	void *nv;

	if (need <= *cap)
		return 0;
	/* A count whose bytes do not fit a size_t cannot be allocated. */
	if (need > SIZE_MAX / size)
		return -ENOMEM;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	if (ncap > SIZE_MAX / size) /* doubling went past what fits */
		ncap = need;
	nv = realloc(*v, ncap * size);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = ncap;
	return 0;
}

size_t mfsd_vec_lower_bound(const void *v, size_t n, size_t size,
			    const void *key, mfsd_vec_cmp_fn cmp)
{
	const char *base = v;
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cmp(key, base + mid * size) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void mfsd_vec_insert(void *v, size_t *n, size_t size, size_t pos,
		     const void *elem)
{
	char *at = (char *)v + pos * size;

	memmove(at + size, at, (*n - pos) * size);
	memcpy(at, elem, size);
	(*n)++;
}

void mfsd_vec_remove(void *v, size_t *n, size_t size, size_t pos)
{
	char *at = (char *)v + pos * size;

	memmove(at, at + size, (*n - pos - 1) * size);
	(*n)--;
}
