/*
 * escape.c - text for people and logs: control characters, '\' and
 * invalid UTF-8 escaped (see mfs_escape in modelfs.h).
 */
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* Byte classes of UTF-8 (RFC 3629, table 3-7 of the Unicode standard). */
#define MFS_ASCII_SPACE 0x20u
#define MFS_ASCII_DEL 0x7fu
#define MFS_UTF8_CONT_MIN 0x80u  /* continuation bytes: 10xxxxxx */
#define MFS_UTF8_CONT_MAX 0xbfu
#define MFS_UTF8_LEAD2_MIN 0xc2u /* 0xc0, 0xc1 only start overlong forms */
#define MFS_UTF8_LEAD3_MIN 0xe0u
#define MFS_UTF8_LEAD4_MIN 0xf0u
#define MFS_UTF8_LEAD4_MAX 0xf4u /* beyond: above U+10FFFF */
#define MFS_UTF8_E0_CONT_MIN 0xa0u /* E0 80..9F would be overlong */
#define MFS_UTF8_SURROGATE_LEAD 0xedu
#define MFS_UTF8_ED_CONT_MAX 0x9fu /* ED A0..BF would be a surrogate */
#define MFS_UTF8_F0_CONT_MIN 0x90u /* F0 80..8F would be overlong */
#define MFS_UTF8_F4_CONT_MAX 0x8fu /* F4 90.. would be above U+10FFFF */
/* Lengths of multibyte sequences, by lead byte range. */
#define MFS_UTF8_LEN2 2u
#define MFS_UTF8_LEN3 3u
#define MFS_UTF8_LEN4 4u
/* C1 controls U+0080..U+009F are encoded C2 80..C2 9F. */
#define MFS_UTF8_C1_LEAD 0xc2u
#define MFS_UTF8_C1_LAST 0x9fu

/* "\xNN" is the backslash, 'x' and two hex digits. */
#define MFS_HEX_ESCAPE_LEN 4u
#define MFS_NIBBLE_BITS 4u
#define MFS_NIBBLE_MASK 0xfu

/* Bounds of the first continuation byte after lead byte @lead. */
static void mfs_utf8_second_range(uint8_t lead, uint8_t *lo, uint8_t *hi)
{
	*lo = MFS_UTF8_CONT_MIN;
	*hi = MFS_UTF8_CONT_MAX;
	if (lead == MFS_UTF8_LEAD3_MIN)
		*lo = MFS_UTF8_E0_CONT_MIN;
	else if (lead == MFS_UTF8_SURROGATE_LEAD)
		*hi = MFS_UTF8_ED_CONT_MAX;
	else if (lead == MFS_UTF8_LEAD4_MIN)
		*lo = MFS_UTF8_F0_CONT_MIN;
	else if (lead == MFS_UTF8_LEAD4_MAX)
		*hi = MFS_UTF8_F4_CONT_MAX;
}

/* Length of the valid multibyte UTF-8 sequence at @p (@n bytes left), or
 * 0 if the bytes there are not one. */
static size_t mfs_utf8_seq_len(const uint8_t *p, size_t n)
{
	size_t need;
	uint8_t lo, hi;

	if (p[0] < MFS_UTF8_LEAD2_MIN || p[0] > MFS_UTF8_LEAD4_MAX)
		return 0;
	need = p[0] < MFS_UTF8_LEAD3_MIN   ? MFS_UTF8_LEN2
	       : p[0] < MFS_UTF8_LEAD4_MIN ? MFS_UTF8_LEN3
					   : MFS_UTF8_LEN4;
	if (n < need)
		return 0;
	mfs_utf8_second_range(p[0], &lo, &hi);
	if (p[1] < lo || p[1] > hi)
		return 0;
	/* The second byte was checked above; the rest are plain
	 * continuation bytes. */
	for (size_t i = MFS_UTF8_LEN2; i < need; i++) {
		if (p[i] < MFS_UTF8_CONT_MIN || p[i] > MFS_UTF8_CONT_MAX)
			return 0;
	}
	return need;
}

/* True if the valid 2-byte sequence at @p is a C1 control character:
 * terminals act on some of them (U+009B starts a control sequence). */
static bool mfs_utf8_is_c1(const uint8_t *p)
{
	return p[0] == MFS_UTF8_C1_LEAD && p[1] <= MFS_UTF8_C1_LAST;
}

/* The letter of the short escape of @b ("\n" -> 'n'), or 0 if it has none
 * (or it is a '\' that @flags keep). */
static char mfs_short_escape(uint8_t b, unsigned flags)
{
	switch (b) {
	case '\n':
		return 'n';
	case '\r':
		return 'r';
	case '\t':
		return 't';
	case '\\':
		return (flags & MFS_ESCAPE_KEEP_BACKSLASH) ? 0 : '\\';
	}
	return 0;
}

/* Output cursor: writes what fits, counts everything. */
struct mfs_esc_out {
	char *dst;
	size_t size;  /* room including the NUL */
	size_t written; /* bytes stored in dst so far */
	size_t len;     /* length of the whole escaped text so far */
	bool full;      /* a piece did not fit: nothing more is written */
};

/* Appends the @n bytes of @piece whole, or (if they do not fit before the
 * NUL) nothing now or later, so no escape or character is ever cut. */
static void mfs_esc_put(struct mfs_esc_out *o, const char *piece, size_t n)
{
	if (!o->full && o->written + n < o->size) {
		memcpy(o->dst + o->written, piece, n);
		o->written += n;
	} else {
		o->full = true;
	}
	o->len += n;
}

static void mfs_esc_hex(struct mfs_esc_out *o, uint8_t b)
{
	static const char digits[] = "0123456789abcdef";
	char e[MFS_HEX_ESCAPE_LEN] = {'\\', 'x', digits[b >> MFS_NIBBLE_BITS],
				      digits[b & MFS_NIBBLE_MASK]};

	mfs_esc_put(o, e, sizeof(e));
}

/* Escapes the unit that starts at @p (@n bytes left); returns how many
 * input bytes it consumed. */
static size_t mfs_esc_unit(struct mfs_esc_out *o, const uint8_t *p, size_t n,
			   unsigned flags)
{
	char letter = mfs_short_escape(p[0], flags);
	size_t seq;

	if (letter) {
		char e[] = {'\\', letter};

		mfs_esc_put(o, e, sizeof(e));
		return 1;
	}
	if (p[0] >= MFS_ASCII_SPACE && p[0] < MFS_ASCII_DEL) {
		mfs_esc_put(o, (const char *)p, 1);
		return 1;
	}
	seq = mfs_utf8_seq_len(p, n);
	if (seq == 0 || mfs_utf8_is_c1(p)) {
		/* One byte at a time: the next byte may start a valid
		 * character of its own. */
		mfs_esc_hex(o, p[0]);
		return 1;
	}
	mfs_esc_put(o, (const char *)p, seq);
	return seq;
}

size_t mfs_escape(char *dst, size_t size, const char *src, size_t len,
		  unsigned flags)
{
	struct mfs_esc_out o = {.dst = dst, .size = size};
	const uint8_t *p = (const uint8_t *)src;
	size_t i = 0;

	while (i < len)
		i += mfs_esc_unit(&o, p + i, len - i, flags);
	if (size > 0)
		dst[o.written] = '\0';
	return o.len;
}
