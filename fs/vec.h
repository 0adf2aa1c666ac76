/*
 * vec.h - sorted vectors: the daemon's tables kept in ascending order
 * (models by key and by generation, skipped containers, a model's
 * holds), searched by bisection and kept sorted by shifting the tail on
 * insert and remove.
 *
 * A vector is a plain array of @n elements of @size bytes with room for
 * @cap; the caller keeps the three and its own lock.  No function here
 * locks, and only mfsd_vec_reserve allocates.
 */
#ifndef MFSD_VEC_H
#define MFSD_VEC_H

#include <stddef.h>

/* Orders @key against element @elem: negative, zero or positive as
 * @key sorts before, with or after it. */
typedef int (*mfsd_vec_cmp_fn)(const void *key, const void *elem);

/*
 * Grows *@v, of *@cap elements of @size bytes, to hold at least @need,
 * doubling its capacity.  Returns 0 (also when it already has room) or
 * -ENOMEM, leaving *@v and *@cap as they were.
 */
int mfsd_vec_reserve(void **v, size_t *cap, size_t need, size_t size);

/*
 * Index of the first of the @n elements of @v (@size bytes each, sorted
 * ascending by @cmp) that does not sort before @key: where @key is, or
 * where it would be inserted; @n if every element sorts before it.
 */
size_t mfsd_vec_lower_bound(const void *v, size_t n, size_t size,
			    const void *key, mfsd_vec_cmp_fn cmp);

/*
 * Copies @elem into @v at @pos (at most *@n) and counts it, moving the
 * elements from @pos on up by one.  @v must have room for *@n + 1
 * (mfsd_vec_reserve).
 */
void mfsd_vec_insert(void *v, size_t *n, size_t size, size_t pos,
		     const void *elem);

/* Takes element @pos (less than *@n) out of @v, moving the ones after it
 * down by one.  What the element owns is the caller's to free first. */
void mfsd_vec_remove(void *v, size_t *n, size_t size, size_t pos);

#endif /* MFSD_VEC_H */
