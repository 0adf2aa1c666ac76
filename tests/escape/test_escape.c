/*
 * test_escape.c - unit tests of mfs_escape: every byte alone and between
 * other text, valid and invalid UTF-8, the backslash flag, truncation
 * (bounded, NUL-terminated, never inside an escape or a character) and
 * the snprintf-like return value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "modelfs.h"

#define BYTE_VALUES 256
#define ASCII_SPACE 0x20
#define ASCII_DEL 0x7f
/* Room for any escape of the short inputs below, plus context. */
#define OUT_MAX 256
/* Fills the bytes past the output so writes beyond @size show up. */
#define CANARY ((char)0x5a)
#define FUZZ_ROUNDS 2000
#define FUZZ_LEN_MAX 40
#define FUZZ_SEED 12345u

/* Escapes @len bytes of @src with @flags into a fresh buffer; checks the
 * length returned against what was written. */
static const char *esc(const char *src, size_t len, unsigned flags)
{
	static char out[OUT_MAX];
	size_t n = mfs_escape(out, sizeof(out), src, len, flags);

	assert_true(n < sizeof(out));
	assert_int_equal(strlen(out), n);
	return out;
}

/* The escape of byte @b alone, worked out from the rules (not from the
 * code under test): printable ASCII stays, the rest is escaped. */
static void expected_byte(unsigned b, unsigned flags, char *out, size_t size)
{
	if (b == '\n')
		snprintf(out, size, "\\n");
	else if (b == '\r')
		snprintf(out, size, "\\r");
	else if (b == '\t')
		snprintf(out, size, "\\t");
	else if (b == '\\')
		snprintf(out, size, (flags & MFS_ESCAPE_KEEP_BACKSLASH) ?
			 "\\" : "\\\\");
	else if (b >= ASCII_SPACE && b < ASCII_DEL)
		snprintf(out, size, "%c", (char)b);
	else /* C0, DEL, and no byte >= 0x80 is a character alone */
		snprintf(out, size, "\\x%02x", b);
}

static void test_every_byte_alone(void **state)
{
	char want[OUT_MAX];
	(void)state;

	for (unsigned flags = 0; flags <= MFS_ESCAPE_KEEP_BACKSLASH; flags++) {
		for (unsigned b = 0; b < BYTE_VALUES; b++) {
			char in = (char)b;

			expected_byte(b, flags, want, sizeof(want));
			assert_string_equal(esc(&in, 1, flags), want);
		}
	}
}

static void test_every_byte_in_context(void **state)
{
	/* The escape of one byte is at most MFS_ESCAPE_MAX_EXPANSION. */
	char want[OUT_MAX], one[MFS_ESCAPE_MAX_EXPANSION + 1];
	(void)state;

	for (unsigned b = 0; b < BYTE_VALUES; b++) {
		/* Between ASCII, and before a valid 2-byte character (an
		 * invalid byte must not swallow the character after it). */
		char in1[] = {'a', (char)b, 'z'};
		char in2[] = {(char)b, (char)0xc3, (char)0xa9};

		expected_byte(b, 0, one, sizeof(one));
		snprintf(want, sizeof(want), "a%sz", one);
		assert_string_equal(esc(in1, sizeof(in1), 0), want);
		snprintf(want, sizeof(want), "%s\xc3\xa9", one);
		assert_string_equal(esc(in2, sizeof(in2), 0), want);
	}
}

static void test_valid_utf8_kept(void **state)
{
	static const char *const valid[] = {
		"caf\xc3\xa9",		/* U+00E9 */
		"\xc2\xa0",		/* U+00A0, first after the C1 range */
		"\xdf\xbf",		/* U+07FF */
		"\xe0\xa0\x80",		/* U+0800, shortest 3-byte form */
		"\xe2\x82\xac",		/* U+20AC */
		"\xed\x9f\xbf",		/* U+D7FF, just below surrogates */
		"\xee\x80\x80",		/* U+E000, just above them */
		"\xef\xbf\xbf",		/* U+FFFF */
		"\xf0\x90\x80\x80",	/* U+10000 */
		"\xf0\x9f\x98\x80",	/* U+1F600 */
		"\xf4\x8f\xbf\xbf",	/* U+10FFFF, the last code point */
	};
	(void)state;

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		assert_string_equal(esc(valid[i], strlen(valid[i]), 0),
				    valid[i]);
}

static void test_invalid_utf8_escaped(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"\xc0\x80", "\\xc0\\x80"},		/* overlong NUL */
		{"\xc1\xbf", "\\xc1\\xbf"},		/* overlong '?' */
		{"\xe0\x80\x80", "\\xe0\\x80\\x80"},	/* overlong */
		{"\xf0\x80\x80\x80", "\\xf0\\x80\\x80\\x80"},
		{"\xed\xa0\x80", "\\xed\\xa0\\x80"},	/* surrogate D800 */
		{"\xed\xbf\xbf", "\\xed\\xbf\\xbf"},	/* surrogate DFFF */
		{"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"}, /* > 10FFFF */
		{"\xf5\x80\x80\x80", "\\xf5\\x80\\x80\\x80"},
		{"\xe2\x82", "\\xe2\\x82"},		/* cut at the end */
		{"\xe2\x82z", "\\xe2\\x82z"},		/* cut by ASCII */
		{"\xe2\xe2\x82\xac", "\\xe2\xe2\x82\xac"}, /* lead, then € */
		{"\x80", "\\x80"},			/* lone continuation */
		{"\xc2\x85", "\\xc2\\x85"},		/* C1: NEL */
		{"\xc2\x9b[2J", "\\xc2\\x9b[2J"},	/* C1: CSI */
		{"\xff\xfe.mfs", "\\xff\\xfe.mfs"},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(esc(cases[i].in, strlen(cases[i].in), 0),
				    cases[i].want);
}

static void test_forged_line_and_nul(void **state)
{
	static const char in[] = "evil\nmodelfs: forged\r\tline\\";
	static const char nul[] = {'a', '\0', 'b'};
	(void)state;

	assert_string_equal(esc(in, strlen(in), 0),
			    "evil\\nmodelfs: forged\\r\\tline\\\\");
	assert_string_equal(esc(in, strlen(in), MFS_ESCAPE_KEEP_BACKSLASH),
			    "evil\\nmodelfs: forged\\r\\tline\\");
	/* @len counts, not the NUL: a NUL inside is escaped too. */
	assert_string_equal(esc(nul, sizeof(nul), 0), "a\\x00b");
	assert_string_equal(esc(NULL, 0, 0), "");
}

/* The longest escape of a prefix of @src (cut at any byte) that is also a
 * prefix of the whole escape and fits in @room bytes: what a truncated
 * result must be, worked out without the truncation code. */
static size_t longest_whole_prefix(const char *src, size_t len,
				   const char *full, size_t room)
{
	char part[OUT_MAX];
	size_t best = 0;

	for (size_t k = 0; k <= len; k++) {
		size_t n = mfs_escape(part, sizeof(part), src, k, 0);

		if (n <= room && strncmp(part, full, n) == 0 && n > best)
			best = n;
	}
	return best;
}

static void test_truncation(void **state)
{
	static const char src[] = "ab\n\xff\xc3\xa9\xf0\x9f\x98\x80\\z\x01";
	size_t len = sizeof(src) - 1;
	char full[OUT_MAX], out[OUT_MAX];
	size_t total = mfs_escape(full, sizeof(full), src, len, 0);
	(void)state;

	/* Measuring needs no buffer. */
	assert_int_equal(mfs_escape(NULL, 0, src, len, 0), total);
	for (size_t size = 1; size <= total + 1; size++) {
		size_t want = longest_whole_prefix(src, len, full, size - 1);

		memset(out, CANARY, sizeof(out));
		assert_int_equal(mfs_escape(out, size, src, len, 0), total);
		assert_int_equal(strlen(out), want);
		assert_memory_equal(out, full, want);
		for (size_t i = size; i < sizeof(out); i++)
			assert_int_equal(out[i], CANARY);
	}
	/* Size 0 writes nothing at all. */
	memset(out, CANARY, sizeof(out));
	assert_int_equal(mfs_escape(out, 0, src, len, 0), total);
	assert_int_equal(out[0], CANARY);
}

/* A byte from a tiny generator (the test must not depend on rand()). */
static unsigned char next_byte(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (unsigned char)(*seed >> 16);
}

/* Output is safe text, within the documented bound; with the flag,
 * escaping it again changes nothing. */
static void test_random_inputs(void **state)
{
	unsigned seed = FUZZ_SEED;
	char in[FUZZ_LEN_MAX];
	char once[OUT_MAX], twice[OUT_MAX];
	(void)state;

	for (int round = 0; round < FUZZ_ROUNDS; round++) {
		size_t len = next_byte(&seed) % FUZZ_LEN_MAX, n, m;

		for (size_t i = 0; i < len; i++)
			in[i] = (char)next_byte(&seed);
		n = mfs_escape(once, sizeof(once), in, len,
			       MFS_ESCAPE_KEEP_BACKSLASH);
		assert_true(n <= len * MFS_ESCAPE_MAX_EXPANSION);
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)once[i];

			assert_true(c >= ASCII_SPACE && c != ASCII_DEL);
		}
		m = mfs_escape(twice, sizeof(twice), once, n,
			       MFS_ESCAPE_KEEP_BACKSLASH);
		assert_int_equal(m, n);
		assert_string_equal(twice, once);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_byte_alone),
		cmocka_unit_test(test_every_byte_in_context),
		cmocka_unit_test(test_valid_utf8_kept),
		cmocka_unit_test(test_invalid_utf8_escaped),
		cmocka_unit_test(test_forged_line_and_nul),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_random_inputs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
