/*
 * npy.c - NPY headers: the fixed-size v1.0 header the mount serves in
 * front of every array, and a strict parser of the headers NumPy writes
 * (versions 1.0, 2.0 and 3.0).
 *
 * The header dict is a Python literal.  NumPy reads it with
 * ast.literal_eval; we accept exactly the subset NumPy produces (plus the
 * harmless variations a hand-written file may have: key order, quote
 * style, whitespace, trailing comma) and refuse everything else, because
 * this parser sits in front of mmap: a misread shape or dtype would serve
 * wrong bytes, not just fail.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "internal.h"

/* Preamble: magic, major and minor version, then the header length. */
#define MFS_NPY_MAGIC "\x93NUMPY"
#define MFS_NPY_MAGIC_LEN 6u
#define MFS_NPY_MAJOR_OFF 6u
#define MFS_NPY_MINOR_OFF 7u
#define MFS_NPY_HLEN_OFF 8u
/* v1.0 stores the header length as u16, v2.0 and v3.0 as u32. */
#define MFS_NPY_PREAMBLE_V1 10u
/* NumPy aligns the data of the headers it writes to this many bytes. */
#define MFS_NPY_COMPACT_ALIGN 64u
/* numpy.lib.format.GROWTH_AXIS_MAX_DIGITS: room NumPy leaves after the dict
 * for the growth axis of the shape (> the 20 digits of any uint64). */
#define MFS_NPY_GROWTH_AXIS_MAX_DIGITS 21u
#define MFS_NPY_DECIMAL_BASE 10u
#define MFS_NPY_PREAMBLE_V2 12u
#define MFS_NPY_MAX_MAJOR 3u

/* Nesting bound while skipping a structured descr, which we only refuse:
 * deeper than any dtype NumPy can build, small enough for the stack. */
#define MFS_NPY_MAX_NESTING 64u

/* Keys of the header dict, as bits of mfs_npy_dict.seen. */
#define MFS_NPY_KEY_DESCR 1u
#define MFS_NPY_KEY_FORTRAN 2u
#define MFS_NPY_KEY_SHAPE 4u

/* The supported descr type codes ("b1", "f4", ...) after the byte order. */
struct mfs_npy_code {
	const char *code;
	mfs_dtype dtype;
};

static const struct mfs_npy_code mfs_npy_codes[] = {
	{"b1", MFS_DTYPE_BOOL},      {"i1", MFS_DTYPE_INT8},
	{"i2", MFS_DTYPE_INT16},     {"i4", MFS_DTYPE_INT32},
	{"i8", MFS_DTYPE_INT64},     {"u1", MFS_DTYPE_UINT8},
	{"u2", MFS_DTYPE_UINT16},    {"u4", MFS_DTYPE_UINT32},
	{"u8", MFS_DTYPE_UINT64},    {"f2", MFS_DTYPE_FLOAT16},
	{"f4", MFS_DTYPE_FLOAT32},   {"f8", MFS_DTYPE_FLOAT64},
	{"c8", MFS_DTYPE_COMPLEX64}, {"c16", MFS_DTYPE_COMPLEX128},
};

#define MFS_NPY_SUPPORTED                                                    \
	"supported: bool, int8..int64, uint8..uint64, float16, float32, "    \
	"float64, complex64, complex128, little-endian"

/* ------------------------------------------------------------------ */
/* Writing the header                                                  */
/* ------------------------------------------------------------------ */

/* Bounded appender into the caller's header buffer. */
struct mfs_npy_out {
	char *p;
	size_t len;
	size_t cap;
};

static bool mfs_npy_append(struct mfs_npy_out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Appends formatted text; false (and nothing usable) if it did not fit. */
static bool mfs_npy_append(struct mfs_npy_out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len)
		return false;
	o->len += (size_t)n;
	return true;
}

/* Writes the dict text exactly as NumPy's repr-based writer does:
 * sorted keys, "(3,)" for one dimension, "()" for none. */
static bool mfs_npy_dict_text(struct mfs_npy_out *o, const char *descr,
			      uint32_t ndim, const uint64_t *shape,
			      mfs_order order)
{
	bool ok = mfs_npy_append(o, "{'descr': '%s', 'fortran_order': %s, "
				 "'shape': (",
				 descr, order == MFS_ORDER_F ? "True" : "False");

	for (uint32_t i = 0; ok && i < ndim; i++)
		ok = mfs_npy_append(o, i ? ", %ju" : "%ju", (uintmax_t)shape[i]);
	if (ok && ndim == 1)
		ok = mfs_npy_append(o, ",");
	return ok && mfs_npy_append(o, "), }");
}

/*
 * Spaces NumPy (>= 1.24) reserves after the dict so the growth axis can be
 * rewritten in place: GROWTH_AXIS_MAX_DIGITS minus the digits of that
 * axis.  Counted so a compact header is byte-identical to NumPy's.
 */
static size_t mfs_npy_growth_room(uint32_t ndim, const uint64_t *shape,
				  mfs_order order)
{
	uint64_t axis;
	size_t digits = 1;

	if (ndim == 0)
		return 0;
	axis = shape[order == MFS_ORDER_F ? ndim - 1 : 0];
	while (axis >= MFS_NPY_DECIMAL_BASE) {
		axis /= MFS_NPY_DECIMAL_BASE;
		digits++;
	}
	return MFS_NPY_GROWTH_AXIS_MAX_DIGITS - digits;
}

int mfs_npy_header(mfs_dtype dtype, uint32_t ndim, const uint64_t *shape,
		   mfs_order order, char *out, size_t out_len)
{
	const char *descr = mfs_dtype_npy_descr(dtype);
	struct mfs_npy_out o;
	uint64_t bytes;
	uint32_t total;

	mfs_clear_error();
	if (!descr)
		return mfs_fail(-EINVAL, "NPY header: dtype code %d is not valid",
				(int)dtype);
	if (ndim > MFS_MAX_NDIM)
		return mfs_fail(-EINVAL,
				"NPY header: ndim %u is more than the limit of %u",
				ndim, MFS_MAX_NDIM);
	if (ndim > 0 && !shape)
		return mfs_fail(-EINVAL, "NPY header: shape is NULL for ndim %u",
				ndim);
	if (order != MFS_ORDER_C && order != MFS_ORDER_F)
		return mfs_fail(-EINVAL, "NPY header: order code %d is not valid",
				(int)order);
	if (!mfs_shape_bytes(dtype, ndim, shape, &bytes))
		return mfs_fail(-EINVAL,
				"NPY header: shape x itemsize %zu overflows 64 bits",
				mfs_dtype_size(dtype));
	if (!out || out_len < MFS_NPY_HEADER_SIZE)
		return mfs_fail(-ENOBUFS,
				"NPY header: buffer of %zu bytes is smaller than %u",
				out ? out_len : 0, MFS_NPY_HEADER_SIZE);

	memcpy(out, MFS_NPY_MAGIC, MFS_NPY_MAGIC_LEN);
	out[MFS_NPY_MAJOR_OFF] = 1;
	out[MFS_NPY_MINOR_OFF] = 0;
	/* The last byte is the '\n' NumPy ends every header with. */
	o.p = out + MFS_NPY_PREAMBLE_V1;
	o.len = 0;
	o.cap = MFS_NPY_HEADER_SIZE - MFS_NPY_PREAMBLE_V1 - 1;
	/* Cannot fail: 32 dimensions of 20 digits take under 800 bytes. */
	if (!mfs_npy_dict_text(&o, descr, ndim, shape, order))
		return mfs_fail(-ENOBUFS, "NPY header: dict does not fit in %u "
				"bytes", MFS_NPY_HEADER_SIZE);
	total = MFS_NPY_HEADER_SIZE;
	/*
	 * With no data, page alignment buys nothing, and a data offset equal
	 * to a page-aligned file size breaks np.load(mmap_mode="r") (Python's
	 * mmap refuses an offset at the end of the file), so empty arrays get
	 * NumPy's own compact header, padded to its 64-byte alignment.
	 */
	if (bytes == 0)
		total = (uint32_t)((MFS_NPY_PREAMBLE_V1 + o.len +
				    mfs_npy_growth_room(ndim, shape, order) +
				    1 + MFS_NPY_COMPACT_ALIGN - 1) &
				   ~(size_t)(MFS_NPY_COMPACT_ALIGN - 1));
	mfs_put16((uint8_t *)out + MFS_NPY_HLEN_OFF,
		  (uint16_t)(total - MFS_NPY_PREAMBLE_V1));
	memset(o.p + o.len, ' ', total - MFS_NPY_PREAMBLE_V1 - 1 - o.len);
	out[total - 1] = '\n';
	return (int)total;
}

/* ------------------------------------------------------------------ */
/* Parsing the dict                                                    */
/* ------------------------------------------------------------------ */

/* Read position in the header text. */
struct mfs_npy_cur {
	const char *base; /* byte 0 of the file: message offsets count from it */
	const char *p;    /* next unread byte */
	const char *end;  /* one past the header's last byte */
	const char *label;
};

/* What the dict says, before its meaning is checked. */
struct mfs_npy_dict {
	const char *descr; /* descr string, not NUL-terminated; NULL if a list */
	size_t descr_len;
	bool structured; /* descr was a list of fields */
	bool fortran;
	uint32_t ndim; /* dimensions seen; may exceed MFS_MAX_NDIM */
	uint64_t shape[MFS_MAX_NDIM];
	unsigned seen; /* MFS_NPY_KEY_* bits */
};

static size_t mfs_npy_off(const struct mfs_npy_cur *c)
{
	return (size_t)(c->p - c->base);
}

static bool mfs_npy_at_end(const struct mfs_npy_cur *c)
{
	return c->p >= c->end;
}

static char mfs_npy_peek(const struct mfs_npy_cur *c)
{
	return mfs_npy_at_end(c) ? '\0' : *c->p;
}

/* Printable ASCII: what strings may hold and messages may quote as is. */
static bool mfs_npy_is_print(unsigned char ch)
{
	return ch >= ' ' && ch <= '~';
}

/* Python's whitespace inside brackets (newlines join lines there). */
static void mfs_npy_skip_ws(struct mfs_npy_cur *c)
{
	while (!mfs_npy_at_end(c) && (*c->p == ' ' || *c->p == '\t' ||
				      *c->p == '\n' || *c->p == '\r' ||
				      *c->p == '\f'))
		c->p++;
}

/* -EBADMSG: "@field: expected @what at byte N, found ...". */
static int mfs_npy_expected(const struct mfs_npy_cur *c, const char *field,
			    const char *what)
{
	if (mfs_npy_at_end(c))
		return mfs_fail(-EBADMSG,
				"%s: NPY header %s: expected %s at byte %zu, "
				"found the end of the header",
				c->label, field, what, mfs_npy_off(c));
	if (*c->p != ' ' && mfs_npy_is_print((unsigned char)*c->p))
		return mfs_fail(-EBADMSG,
				"%s: NPY header %s: expected %s at byte %zu, "
				"found '%c'",
				c->label, field, what, mfs_npy_off(c), *c->p);
	return mfs_fail(-EBADMSG,
			"%s: NPY header %s: expected %s at byte %zu, found "
			"byte 0x%02x",
			c->label, field, what, mfs_npy_off(c),
			(unsigned char)*c->p);
}

/* Consumes @ch (after whitespace) or fails naming @field. */
static int mfs_npy_expect(struct mfs_npy_cur *c, char ch, const char *field,
			  const char *what)
{
	mfs_npy_skip_ws(c);
	if (mfs_npy_peek(c) != ch)
		return mfs_npy_expected(c, field, what);
	c->p++;
	return 0;
}

/*
 * Reads a quoted string without escapes ('...' or "...") into @s/@len.
 * Only printable ASCII is accepted: no valid key or supported descr needs
 * more, and it keeps messages that quote the string readable.
 */
static int mfs_npy_string(struct mfs_npy_cur *c, const char *field,
			  const char **s, size_t *len)
{
	char quote;
	const char *start;

	mfs_npy_skip_ws(c);
	quote = mfs_npy_peek(c);
	if (quote != '\'' && quote != '"')
		return mfs_npy_expected(c, field, "a quoted string");
	start = ++c->p;
	while (!mfs_npy_at_end(c) && *c->p != quote) {
		unsigned char ch = (unsigned char)*c->p;
		if (!mfs_npy_is_print(ch) || ch == '\\')
			return mfs_fail(-EBADMSG,
					"%s: NPY header %s: byte 0x%02x at byte "
					"%zu is not allowed in a string "
					"(printable ASCII without escapes)",
					c->label, field, ch, mfs_npy_off(c));
		c->p++;
	}
	if (mfs_npy_at_end(c))
		return mfs_fail(-EBADMSG,
				"%s: NPY header %s: string starting at byte %zu "
				"is not terminated",
				c->label, field, (size_t)(start - 1 - c->base));
	*s = start;
	*len = (size_t)(c->p - start);
	c->p++;
	return 0;
}

/* Skips a quoted string inside a skipped literal, honouring escapes. */
static int mfs_npy_skip_string(struct mfs_npy_cur *c, const char *field)
{
	char quote = *c->p++;

	while (!mfs_npy_at_end(c) && *c->p != quote)
		c->p += (*c->p == '\\' && c->p + 1 < c->end) ? 2 : 1;
	if (mfs_npy_at_end(c))
		return mfs_npy_expected(c, field, "the end of a string");
	c->p++;
	return 0;
}

/*
 * Skips a bracketed literal (a structured descr list) with matched
 * brackets and strings, so that a valid file with an unsupported dtype
 * gets -ENOTSUP rather than a syntax error.
 */
static int mfs_npy_skip_nested(struct mfs_npy_cur *c, const char *field)
{
	char closers[MFS_NPY_MAX_NESTING];
	unsigned depth = 0;

	do {
		char ch = mfs_npy_peek(c);
		int rc;

		if (mfs_npy_at_end(c))
			return mfs_npy_expected(c, field, "a closing bracket");
		if (ch == '\'' || ch == '"') {
			rc = mfs_npy_skip_string(c, field);
			if (rc)
				return rc;
			continue;
		}
		if (ch == '[' || ch == '(' || ch == '{') {
			if (depth == MFS_NPY_MAX_NESTING)
				return mfs_fail(-EBADMSG,
						"%s: NPY header %s: brackets "
						"nested deeper than %u at byte "
						"%zu",
						c->label, field,
						MFS_NPY_MAX_NESTING,
						mfs_npy_off(c));
			closers[depth++] = ch == '[' ? ']' : ch == '(' ? ')' : '}';
		} else if (ch == ']' || ch == ')' || ch == '}') {
			if (depth == 0 || closers[depth - 1] != ch)
				return mfs_npy_expected(c, field,
							"a matching bracket");
			depth--;
		}
		c->p++;
	} while (depth > 0);
	return 0;
}

static int mfs_npy_value_descr(struct mfs_npy_cur *c, struct mfs_npy_dict *d)
{
	mfs_npy_skip_ws(c);
	if (mfs_npy_peek(c) == '[') {
		d->structured = true;
		d->descr = NULL;
		return mfs_npy_skip_nested(c, "'descr'");
	}
	return mfs_npy_string(c, "'descr'", &d->descr, &d->descr_len);
}

/* True if the @len bytes at the cursor spell @word, not followed by an
 * identifier character (so "Falsey" is not "False"). */
static bool mfs_npy_word(struct mfs_npy_cur *c, const char *word)
{
	size_t len = strlen(word);
	const char *after = c->p + len;

	if ((size_t)(c->end - c->p) < len || memcmp(c->p, word, len) != 0)
		return false;
	if (after < c->end && (*after == '_' || (*after >= '0' && *after <= '9') ||
			       (*after >= 'A' && *after <= 'Z') ||
			       (*after >= 'a' && *after <= 'z')))
		return false;
	c->p = after;
	return true;
}

static int mfs_npy_value_fortran(struct mfs_npy_cur *c, struct mfs_npy_dict *d)
{
	mfs_npy_skip_ws(c);
	if (mfs_npy_word(c, "True"))
		d->fortran = true;
	else if (mfs_npy_word(c, "False"))
		d->fortran = false;
	else
		return mfs_npy_expected(c, "'fortran_order'", "True or False");
	return 0;
}

/* One dimension: a decimal integer without sign, underscores or leading
 * zeros (as repr writes it), at most 2^64-1. */
static int mfs_npy_dim(struct mfs_npy_cur *c, uint32_t index, uint64_t *out)
{
	const char *start = c->p;
	uint64_t v = 0;

	if (mfs_npy_peek(c) == '-')
		return mfs_fail(-EBADMSG,
				"%s: NPY header 'shape': dimension %u at byte %zu "
				"is negative",
				c->label, index, mfs_npy_off(c));
	while (!mfs_npy_at_end(c) && *c->p >= '0' && *c->p <= '9') {
		unsigned digit = (unsigned)(*c->p - '0');
		if (__builtin_mul_overflow(v, 10u, &v) ||
		    __builtin_add_overflow(v, digit, &v))
			return mfs_fail(-EBADMSG,
					"%s: NPY header 'shape': dimension %u at "
					"byte %zu is larger than 2^64-1",
					c->label, index,
					(size_t)(start - c->base));
		c->p++;
	}
	if (c->p == start)
		return mfs_npy_expected(c, "'shape'", "a non-negative integer");
	if (c->p - start > 1 && *start == '0')
		return mfs_fail(-EBADMSG,
				"%s: NPY header 'shape': dimension %u at byte %zu "
				"has a leading zero",
				c->label, index, (size_t)(start - c->base));
	*out = v;
	return 0;
}

/*
 * A tuple of dimensions: "()", "(5,)", "(3, 4)" or "(3, 4,)".  "(5)" is
 * not a tuple in Python (it is the int 5), so NumPy refuses it and so do
 * we.  Dimensions past MFS_MAX_NDIM are counted but not stored.
 */
static int mfs_npy_value_shape(struct mfs_npy_cur *c, struct mfs_npy_dict *d)
{
	bool comma = false;
	int rc = mfs_npy_expect(c, '(', "'shape'", "'(' (a tuple)");

	d->ndim = 0;
	while (rc == 0) {
		uint64_t v = 0;

		mfs_npy_skip_ws(c);
		if (mfs_npy_peek(c) == ')' && (d->ndim != 1 || comma))
			break;
		if (d->ndim > 0 && !comma)
			return mfs_npy_expected(
				c, "'shape'",
				d->ndim == 1 && mfs_npy_peek(c) == ')'
					? "',' (a 1-tuple is written \"(n,)\")"
					: "',' or ')'");
		rc = mfs_npy_dim(c, d->ndim, &v);
		if (rc)
			return rc;
		if (d->ndim < MFS_MAX_NDIM)
			d->shape[d->ndim] = v;
		/* Cannot wrap: each dimension takes 2 of at most
		 * MFS_NPY_MAX_HEADER bytes. */
		d->ndim++;
		mfs_npy_skip_ws(c);
		comma = mfs_npy_peek(c) == ',';
		if (comma)
			c->p++;
	}
	if (rc)
		return rc;
	c->p++; /* the ')' */
	return 0;
}

/* The keys of the header dict; each must appear exactly once. */
static const struct {
	const char *name;
	unsigned bit;
} mfs_npy_keys[] = {
	{"descr", MFS_NPY_KEY_DESCR},
	{"fortran_order", MFS_NPY_KEY_FORTRAN},
	{"shape", MFS_NPY_KEY_SHAPE},
};

#define MFS_NPY_KEY_COUNT (sizeof(mfs_npy_keys) / sizeof(mfs_npy_keys[0]))

/* Which key a string names, as an MFS_NPY_KEY_* bit; 0 if unknown. */
static unsigned mfs_npy_key_bit(const char *s, size_t len)
{
	for (size_t i = 0; i < MFS_NPY_KEY_COUNT; i++) {
		if (strlen(mfs_npy_keys[i].name) == len &&
		    memcmp(mfs_npy_keys[i].name, s, len) == 0)
			return mfs_npy_keys[i].bit;
	}
	return 0;
}

/* One "key: value" entry. */
static int mfs_npy_entry(struct mfs_npy_cur *c, struct mfs_npy_dict *d)
{
	size_t key_off, len;
	const char *key;
	unsigned bit;
	int rc;

	mfs_npy_skip_ws(c);
	key_off = mfs_npy_off(c);
	rc = mfs_npy_string(c, "dict key", &key, &len);
	if (rc)
		return rc;
	bit = mfs_npy_key_bit(key, len);
	if (!bit)
		return mfs_fail(-EBADMSG,
				"%s: NPY header: unknown key '%.*s' at byte %zu "
				"(expected 'descr', 'fortran_order', 'shape')",
				c->label, (int)len, key, key_off);
	if (d->seen & bit)
		return mfs_fail(-EBADMSG,
				"%s: NPY header: key '%.*s' at byte %zu appears "
				"twice",
				c->label, (int)len, key, key_off);
	d->seen |= bit;
	rc = mfs_npy_expect(c, ':', "dict", "':' after a key");
	if (rc)
		return rc;
	if (bit == MFS_NPY_KEY_DESCR)
		return mfs_npy_value_descr(c, d);
	if (bit == MFS_NPY_KEY_FORTRAN)
		return mfs_npy_value_fortran(c, d);
	return mfs_npy_value_shape(c, d);
}

/* The whole dict: "{" entries separated by ",", optional trailing ",",
 * "}", then only whitespace (NumPy pads with spaces and a '\n'). */
static int mfs_npy_dict_parse(struct mfs_npy_cur *c, struct mfs_npy_dict *d)
{
	int rc = mfs_npy_expect(c, '{', "dict", "'{'");

	while (rc == 0) {
		mfs_npy_skip_ws(c);
		if (mfs_npy_peek(c) == '}')
			break;
		rc = mfs_npy_entry(c, d);
		if (rc)
			return rc;
		mfs_npy_skip_ws(c);
		if (mfs_npy_peek(c) == ',')
			c->p++;
		else if (mfs_npy_peek(c) != '}')
			return mfs_npy_expected(c, "dict", "',' or '}'");
	}
	if (rc)
		return rc;
	c->p++; /* the '}' */
	mfs_npy_skip_ws(c);
	if (!mfs_npy_at_end(c))
		return mfs_npy_expected(c, "padding",
					"only whitespace after the dict");
	for (size_t i = 0; i < MFS_NPY_KEY_COUNT; i++) {
		if (!(d->seen & mfs_npy_keys[i].bit))
			return mfs_fail(-EBADMSG,
					"%s: NPY header: missing key '%s'",
					c->label, mfs_npy_keys[i].name);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Meaning of the descr                                                */
/* ------------------------------------------------------------------ */

/* -ENOTSUP for descr kinds NumPy has but this library does not store. */
static int mfs_npy_unsupported_kind(const char *label, const char *s,
				    size_t len)
{
	const char *what;

	switch (s[1]) { /* len >= 2: checked by the caller */
	case 'O':
		return mfs_fail(-ENOTSUP,
				"%s: NPY descr '%.*s': object arrays (pickled "
				"data) are not supported",
				label, (int)len, s);
	case 'S':
	case 'a':
	case 'U':
		what = "string";
		break;
	case 'M':
		what = "datetime";
		break;
	case 'm':
		what = "timedelta";
		break;
	case 'V':
		what = "void";
		break;
	default:
		return mfs_fail(-EBADMSG,
				"%s: NPY descr '%.*s' is not a NumPy type string",
				label, (int)len, s);
	}
	return mfs_fail(-ENOTSUP, "%s: NPY descr '%.*s': %s dtypes are not "
			"supported (" MFS_NPY_SUPPORTED ")",
			label, (int)len, s, what);
}

static bool mfs_npy_is_order(char ch)
{
	return ch == '<' || ch == '>' || ch == '|' || ch == '=';
}

/* Numeric kinds this library knows, whatever the size. */
static bool mfs_npy_is_numeric_kind(char ch)
{
	return ch == 'b' || ch == 'i' || ch == 'u' || ch == 'f' || ch == 'c';
}

/*
 * The descr must name a supported type with a byte order that means
 * little-endian: '<'; '=' (native) on a little-endian host; and for
 * one-byte types any mark, since byte order does not apply to them.
 */
static int mfs_npy_descr_dtype(const char *label, const struct mfs_npy_dict *d,
			       mfs_dtype *out)
{
	const char *s = d->descr;
	size_t len = d->descr_len;
	const struct mfs_npy_code *code = NULL;
	int rc = 0;

	if (d->structured)
		return mfs_fail(-ENOTSUP,
				"%s: NPY descr is a list: structured dtypes are "
				"not supported",
				label);
	if (len < 2 || !mfs_npy_is_order(s[0]))
		return mfs_fail(-EBADMSG,
				"%s: NPY descr '%.*s' does not start with a "
				"byte-order mark ('<', '>', '|' or '=') and a "
				"type",
				label, (int)len, s);
	if (!mfs_npy_is_numeric_kind(s[1]))
		return mfs_npy_unsupported_kind(label, s, len);
	for (size_t i = 0; i < sizeof(mfs_npy_codes) / sizeof(mfs_npy_codes[0]);
	     i++) {
		const char *cc = mfs_npy_codes[i].code;
		if (strlen(cc) == len - 1 && memcmp(cc, s + 1, len - 1) == 0)
			code = &mfs_npy_codes[i];
	}
	if (!code)
		return mfs_fail(-ENOTSUP,
				"%s: NPY descr '%.*s' is not supported "
				"(" MFS_NPY_SUPPORTED ")",
				label, (int)len, s);
	if (mfs_dtype_size(code->dtype) > 1) {
		bool native_le = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
		if (s[0] == '>' || (s[0] == '=' && !native_le))
			rc = mfs_fail(-ENOTSUP,
				      "%s: NPY descr '%.*s': big-endian dtype "
				      "'%.*s' is not supported; convert with "
				      "arr.astype('<%.*s')",
				      label, (int)len, s, (int)len, s,
				      (int)len - 1, s + 1);
		else if (s[0] == '|')
			rc = mfs_fail(-EBADMSG,
				      "%s: NPY descr '%.*s': byte order '|' "
				      "(not applicable) on a %zu-byte type",
				      label, (int)len, s,
				      mfs_dtype_size(code->dtype));
	}
	if (rc == 0)
		*out = code->dtype;
	return rc;
}

/* Turns a syntactically valid dict into @out (version/offset set by the
 * caller). */
static int mfs_npy_dict_meaning(const char *label, const struct mfs_npy_dict *d,
				uint64_t data_offset, mfs_npy_info *out)
{
	uint64_t bytes;
	int rc = mfs_npy_descr_dtype(label, d, &out->dtype);

	if (rc)
		return rc;
	if (d->ndim > MFS_MAX_NDIM)
		return mfs_fail(-ENOTSUP,
				"%s: NPY header 'shape' has %u dimensions, more "
				"than the limit of %u",
				label, d->ndim, MFS_MAX_NDIM);
	if (!mfs_shape_bytes(out->dtype, d->ndim, d->shape, &bytes))
		return mfs_fail(-EBADMSG,
				"%s: NPY header 'shape': product of dimensions x "
				"itemsize %zu overflows 64 bits",
				label, mfs_dtype_size(out->dtype));
	/* The data must fit in a file (off_t) after the header. */
	if (bytes > (uint64_t)INT64_MAX - data_offset)
		return mfs_fail(-EBADMSG,
				"%s: NPY header 'shape': data of %ju bytes after "
				"a %ju-byte header exceeds the largest file size",
				label, (uintmax_t)bytes, (uintmax_t)data_offset);
	out->ndim = d->ndim;
	memcpy(out->shape, d->shape, sizeof(out->shape[0]) * d->ndim);
	out->order = d->fortran ? MFS_ORDER_F : MFS_ORDER_C;
	out->data_offset = data_offset;
	out->data_length = bytes;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Preamble and entry points                                           */
/* ------------------------------------------------------------------ */

static int mfs_npy_need(const char *label, size_t want, size_t have,
			size_t *need)
{
	if (need)
		*need = want;
	return mfs_fail(-EAGAIN, "%s: NPY header needs %zu bytes, have %zu",
			label, want, have);
}

/* Checks magic and version on whatever prefix is there; sets *@pre to the
 * preamble size once the version is known. */
static int mfs_npy_preamble(const uint8_t *b, size_t len, const char *label,
			    size_t *pre, size_t *need)
{
	size_t have = len < MFS_NPY_MAGIC_LEN ? len : MFS_NPY_MAGIC_LEN;
	unsigned major, minor;

	if (memcmp(b, MFS_NPY_MAGIC, have) != 0)
		return mfs_fail(-EBADMSG,
				"%s: NPY magic: file does not start with "
				"\\x93NUMPY",
				label);
	if (len <= MFS_NPY_MINOR_OFF)
		return mfs_npy_need(label, MFS_NPY_MINOR_OFF + 1, len, need);
	major = b[MFS_NPY_MAJOR_OFF];
	minor = b[MFS_NPY_MINOR_OFF];
	if (major < 1 || major > MFS_NPY_MAX_MAJOR || minor != 0)
		return mfs_fail(-EBADMSG,
				"%s: NPY version %u.%u is not supported "
				"(expected 1.0, 2.0 or 3.0)",
				label, major, minor);
	*pre = major == 1 ? MFS_NPY_PREAMBLE_V1 : MFS_NPY_PREAMBLE_V2;
	if (len < *pre)
		return mfs_npy_need(label, *pre, len, need);
	return 0;
}

int mfs_npy_parse(const void *buf, size_t len, const char *label,
		  mfs_npy_info *out, size_t *need)
{
	static const uint8_t empty[1];
	const uint8_t *b = buf ? buf : empty;
	struct mfs_npy_dict d = {0};
	struct mfs_npy_cur c;
	mfs_npy_info info = {0};
	size_t pre = 0, total;
	uint64_t hlen;
	int rc;

	mfs_clear_error();
	if (!label)
		label = "(npy)";
	if (!buf)
		len = 0;
	rc = mfs_npy_preamble(b, len, label, &pre, need);
	if (rc)
		return rc;
	hlen = pre == MFS_NPY_PREAMBLE_V1 ? mfs_get16(b + MFS_NPY_HLEN_OFF)
					  : mfs_get32(b + MFS_NPY_HLEN_OFF);
	if (hlen > MFS_NPY_MAX_HEADER - pre)
		return mfs_fail(-EBADMSG,
				"%s: NPY header length %ju is more than the limit "
				"of %u bytes (including the %zu-byte preamble)",
				label, (uintmax_t)hlen, MFS_NPY_MAX_HEADER, pre);
	total = pre + (size_t)hlen;
	if (len < total)
		return mfs_npy_need(label, total, len, need);

	c.base = (const char *)b;
	c.p = c.base + pre;
	c.end = c.base + total;
	c.label = label;
	rc = mfs_npy_dict_parse(&c, &d);
	if (rc == 0)
		rc = mfs_npy_dict_meaning(label, &d, total, &info);
	if (rc)
		return rc;
	info.version = b[MFS_NPY_MAJOR_OFF];
	if (out)
		*out = info;
	return 0;
}

/* Reads the header, growing the buffer as the parser asks (bounded by
 * MFS_NPY_MAX_HEADER, which the parser enforces before asking). */
static int mfs_npy_read_header(int fd, const char *label, uint64_t size,
			       mfs_npy_info *info)
{
	size_t want = size < MFS_NPY_HEADER_SIZE ? (size_t)size
						 : MFS_NPY_HEADER_SIZE;
	size_t have = 0, need = 0;
	uint8_t *buf = NULL;
	int rc;

	for (;;) {
		uint8_t *grown = realloc(buf, want ? want : 1);
		if (!grown) {
			rc = mfs_fail(-ENOMEM, "%s: no memory for a %zu-byte "
				      "NPY header", label, want);
			break;
		}
		buf = grown;
		rc = mfs_pread_full(fd, buf + have, want - have, have);
		if (rc) {
			rc = mfs_fail(rc, "%s: reading the NPY header: %s",
				      label, strerror(-rc));
			break;
		}
		have = want;
		rc = mfs_npy_parse(buf, have, label, info, &need);
		if (rc != -EAGAIN)
			break;
		/* need > have always; the check only guards the loop. */
		if (need > size || need <= have) {
			rc = mfs_fail(-EBADMSG,
				      "%s: truncated: file is %ju bytes, its NPY "
				      "header needs %zu",
				      label, (uintmax_t)size, need);
			break;
		}
		want = need;
	}
	free(buf);
	return rc;
}

int mfs_npy_read_fd(int fd, const char *label, mfs_npy_info *out)
{
	mfs_npy_info info;
	struct stat st;
	uint64_t size, end;
	int rc;

	mfs_clear_error();
	if (!label)
		label = "(npy)";
	if (fstat(fd, &st) < 0)
		return mfs_fail(-errno, "%s: fstat: %s", label, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return mfs_fail(-EINVAL, "%s: not a regular file", label);
	size = (uint64_t)st.st_size;
	rc = mfs_npy_read_header(fd, label, size, &info);
	if (rc)
		return rc;
	end = info.data_offset + info.data_length; /* parse bounded it */
	if (size < end)
		return mfs_fail(-EBADMSG,
				"%s: truncated: file is %ju bytes, the array "
				"needs %ju (data_offset %ju + data_length %ju)",
				label, (uintmax_t)size, (uintmax_t)end,
				(uintmax_t)info.data_offset,
				(uintmax_t)info.data_length);
	if (size > end)
		return mfs_fail(-EBADMSG,
				"%s: %ju trailing bytes after the array data "
				"(file is %ju bytes, data ends at %ju)",
				label, (uintmax_t)(size - end), (uintmax_t)size,
				(uintmax_t)end);
	if (out)
		*out = info;
	return 0;
}
