/*
 * evict.c - the page-cache budget's choice and size syntax (see evict.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "evict.h"

#define MFSD_KIB_SHIFT 10u

static int mfsd_cand_cmp(const void *a, const void *b)
{
	const struct mfsd_evict_cand *x = a, *y = b;

	if (x->released_seq != y->released_seq)
		return x->released_seq < y->released_seq ? -1 : 1;
	return (x->gen > y->gen) - (x->gen < y->gen);
}

uint64_t mfsd_evict_total(const struct mfsd_evict_cand *c, size_t n)
{
	uint64_t total = 0;

	for (size_t i = 0; i < n; i++)
		total = total > UINT64_MAX - c[i].bytes ? UINT64_MAX
							 : total + c[i].bytes;
	return total;
}

size_t mfsd_evict_pick(struct mfsd_evict_cand *c, size_t n, uint64_t budget)
{
	uint64_t total = mfsd_evict_total(c, n);
	size_t k = 0;

	if (total <= budget)
		return 0;
	qsort(c, n, sizeof(*c), mfsd_cand_cmp);
	while (k < n && total > budget)
		total -= c[k++].bytes;
	return k;
}

/* The shift of suffix letter @c (K 10, M 20, G 30, T 40), or -1. */
static int mfsd_suffix_shift(char c)
{
	static const char letters[] = "KMGT";
	const char *p = strchr(letters, toupper((unsigned char)c));

	if (!c || !p)
		return -1;
	return (int)((size_t)(p - letters) + 1) * (int)MFSD_KIB_SHIFT;
}

int mfsd_parse_size(const char *text, uint64_t *out)
{
	unsigned long long v;
	char *end;
	int shift = 0;

	if (!text || !isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end) {
		shift = mfsd_suffix_shift(*end);
		if (shift < 0)
			return -EINVAL;
		end++;
		if (*end && strcasecmp(end, "B") != 0 &&
		    strcasecmp(end, "iB") != 0)
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}
