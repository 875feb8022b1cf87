/* buf.h - byte buffer with a hard capacity limit.
 *
 * Data lives in data[off .. off+len).  Reading and consuming are separate
 * steps: peek with buf_data(), then buf_consume().  Writers reserve space
 * with buf_reserve() and commit with buf_commit().  The buffer never grows
 * past max; an attempt fails with E_LIMIT.
 */
#ifndef EXPOSRD_BUF_H
#define EXPOSRD_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t off;   /* start of unread data */
	size_t len;   /* bytes of unread data */
	size_t cap;   /* allocated bytes */
	size_t max;   /* hard limit of cap */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);           /* releases memory, keeps max */
static inline size_t buf_len(const struct buf *b) { return b->len; }
static inline char *buf_data(const struct buf *b) { return b->data + b->off; }
/* Space for at least n more bytes; returns the write pointer or NULL
 * (E_LIMIT / E_NOMEM).  *avail gets the writable size (>= n). */
char *buf_reserve(struct buf *b, size_t n, size_t *avail);
void buf_commit(struct buf *b, size_t n);
void buf_consume(struct buf *b, size_t n);
int buf_append(struct buf *b, const void *p, size_t n); /* 0 or E_LIMIT/E_NOMEM */
int buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Release memory when empty and larger than keep bytes (idle connections). */
void buf_shrink(struct buf *b, size_t keep);

#endif
