/*
 * fail_alloc.c - the link-time allocation wrappers of fail_alloc.h.
 */
#include "fail_alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long fa_fail_at = -1; /* -1: none */
static long fa_calls;        /* counted since the last arm */
static bool fa_paused;
static bool fa_hit;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_asprintf(char **out, const char *fmt, ...);

static bool fa_inject(void)
{
	if (fa_fail_at < 0 || fa_paused || fa_calls++ != fa_fail_at)
		return false;
	fa_hit = true;
	return true;
}

void fail_alloc_arm(long n)
{
	fa_calls = 0;
	fa_paused = false;
	fa_hit = false;
	fa_fail_at = n;
}

bool fail_alloc_disarm(void)
{
	fa_fail_at = -1;
	return fa_hit;
}

bool fail_alloc_hit(void)
{
	return fa_hit;
}

bool fail_alloc_pause(bool paused)
{
	bool was = fa_paused;

	fa_paused = paused;
	return was;
}

void *__wrap_malloc(size_t n)
{
	return fa_inject() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fa_inject() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fa_inject() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return fa_inject() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	return fa_inject() ? NULL : __real_strndup(s, n);
}

int __wrap_asprintf(char **out, const char *fmt, ...)
{
	va_list ap;
	int rc;

	if (fa_inject())
		return -1;
	va_start(ap, fmt);
	rc = vasprintf(out, fmt, ap);
	va_end(ap);
	return rc;
}
