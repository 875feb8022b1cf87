#include "buf.h"
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_ALLOC 1024

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->off = b->len = b->cap = 0;
	b->max = max;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

char *buf_reserve(struct buf *b, size_t n, size_t *avail)
{
	if (b->len == 0)
		b->off = 0;
	if (b->cap - b->off - b->len >= n && n > 0)
		goto done;
	if (b->off > 0 && b->cap - b->len >= n) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
		if (n > 0)
			goto done;
	}
	if (n > b->max || b->len > b->max - n)
		return NULL;
	size_t want = b->len + n;
	size_t cap = b->cap ? b->cap : BUF_MIN_ALLOC;
	while (cap < want)
		cap *= 2;
	if (cap > b->max)
		cap = b->max;
	if (cap > b->cap) {
		if (b->off > 0) {
			memmove(b->data, b->data + b->off, b->len);
			b->off = 0;
		}
		char *p = realloc(b->data, cap);
		if (!p)
			return NULL;
		b->data = p;
		b->cap = cap;
	}
done:
	if (avail)
		*avail = b->cap - b->off - b->len;
	return b->data + b->off + b->len;
}

void buf_commit(struct buf *b, size_t n)
{
	b->len += n;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->off = 0;
		b->len = 0;
		return;
	}
	b->off += n;
	b->len -= n;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	char *w = buf_reserve(b, n, NULL);
	if (!w)
		return E_LIMIT;
	memcpy(w, p, n);
	b->len += n;
	return 0;
}

int buf_appendf(struct buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return E_INVAL;
	if ((size_t)n < sizeof(small))
		return buf_append(b, small, (size_t)n);
	size_t avail;
	char *w = buf_reserve(b, (size_t)n, &avail);
	if (!w)
		return E_LIMIT;
	if (avail > (size_t)n) {
		va_start(ap, fmt);
		vsnprintf(w, (size_t)n + 1, fmt, ap);
		va_end(ap);
	} else {
		/* The text fits exactly but its NUL does not: format aside. */
		char *tmp = malloc((size_t)n + 1);
		if (!tmp)
			return E_NOMEM;
		va_start(ap, fmt);
		vsnprintf(tmp, (size_t)n + 1, fmt, ap);
		va_end(ap);
		memcpy(w, tmp, (size_t)n);
		free(tmp);
	}
	b->len += (size_t)n;
	return 0;
}

void buf_shrink(struct buf *b, size_t keep)
{
	if (b->len == 0 && b->cap > keep)
		buf_free(b);
}
