/* storage.h - asynchronous key/value storage of JSON records.
 *
 * Namespaces, keys and values follow spec/storage.md §3.  Every operation
 * completes through its callback, always later on the loop (never inside
 * the call), so callers have one code path for every backend.  Status
 * codes: 0, E_NOTFOUND, E_EXISTS (create), E_BUSY (lock), E_BACKEND.
 *
 * Backends implement struct storage_ops and register in storage.c's table.
 * Memory and SQLite backends get the per-key FIFO lock of storage.c for
 * locked read-modify-write; networked backends provide their own.
 */
#ifndef EXPOSRD_STORAGE_H
#define EXPOSRD_STORAGE_H

#include <stddef.h>

struct loop;
struct storage;
struct storage_lock;

enum storage_ns {
	NS_ACCOUNT = 0,
	NS_TUNNEL,
	NS_ALTNAME,
	NS_COUNT,
};

#define STORAGE_MAX_KEY 300          /* longest key (alt-name keys) */
#define STORAGE_MAX_VALUE (256u << 10) /* longest JSON value */
#define STORAGE_MAX_LIST 1000        /* keys per list call */

/* Namespace name as in the spec ("account", "tunnel", "ingress-altnames"). */
const char *storage_ns_name(enum storage_ns ns);

/* value is NUL-terminated JSON text valid only during the callback. */
typedef void (*storage_get_cb)(void *arg, int status, const char *value, size_t len);
typedef void (*storage_done_cb)(void *arg, int status);
/* values[i] NULL for a missing key. */
typedef void (*storage_multi_cb)(void *arg, int status, char *const *values, size_t n);
/* keys valid during the callback; next_cursor NULL at the end. */
typedef void (*storage_list_cb)(void *arg, int status, char *const *keys, size_t n, const char *next_cursor);
/* Locked read for read-modify-write: on status 0 the caller holds lock and
 * must call storage_update_finish exactly once. */
typedef void (*storage_locked_cb)(void *arg, int status, const char *value, size_t len,
				  struct storage_lock *lock);

struct storage_ops {
	const char *name;
	/* Synchronous open at startup; url is the --storage-url value. */
	int (*open)(struct storage *s, const char *url, void **backend);
	void (*close)(void *backend);
	void (*get)(struct storage *s, enum storage_ns ns, const char *key, storage_get_cb cb, void *arg);
	void (*get_multi)(struct storage *s, enum storage_ns ns, const char *const *keys, size_t n,
			  storage_multi_cb cb, void *arg);
	/* exclusive: insert only if absent (E_EXISTS otherwise); ttl seconds, 0 = none */
	void (*set)(struct storage *s, enum storage_ns ns, const char *key, const char *value, size_t len,
		    int exclusive, long ttl, storage_done_cb cb, void *arg);
	void (*del)(struct storage *s, enum storage_ns ns, const char *key, storage_done_cb cb, void *arg);
	/* cursor NULL from the start; the backend's own cursor format */
	void (*list)(struct storage *s, enum storage_ns ns, const char *cursor, size_t count,
		     storage_list_cb cb, void *arg);
	/* Optional own locking for read-modify-write across processes (NULL:
	 * storage.c's in-process FIFO lock over get/set).  lock_get locks key,
	 * reads it and completes with storage_backend_locked(); lock_release
	 * writes value (NULL: no write), unlocks and completes with
	 * storage_backend_released().  Both complete later on the loop. */
	void (*lock_get)(struct storage *s, enum storage_ns ns, const char *key, struct storage_lock *lock);
	void (*lock_release)(struct storage *s, struct storage_lock *lock, void *handle, const char *value,
			     size_t len);
	/* Optional: periodic/maintenance hook at shutdown is close(). */
};

/* For backends with their own locking: status 0 (value valid during the
 * call; handle is the backend's lock state, passed back to lock_release),
 * E_NOTFOUND (nothing is locked), E_BUSY (lock not acquired), E_BACKEND. */
void storage_backend_locked(struct storage_lock *lock, int status, const char *value, size_t len, void *handle);
void storage_backend_released(struct storage_lock *lock, int status);

/* Open the backend selected by the URL scheme.  Returns NULL and writes a
 * message to err (naming the compiled-in backends when unknown). */
struct storage *storage_open(struct loop *loop, const char *url, char *err, size_t errcap);
/* Close before loop_free: backends cancel their timers on the loop. */
void storage_close(struct storage *s); /* NULL ok */
struct loop *storage_loop(const struct storage *s);
void *storage_backend(const struct storage *s);
const char *storage_backend_name(const struct storage *s);
/* Space-separated compiled-in backend names ("memory sqlite"). */
const char *storage_backends(void);

void storage_get(struct storage *s, enum storage_ns ns, const char *key, storage_get_cb cb, void *arg);
void storage_get_multi(struct storage *s, enum storage_ns ns, const char *const *keys, size_t n,
		       storage_multi_cb cb, void *arg);
/* Exclusive create: status 0 created, E_EXISTS when the key exists. */
void storage_create(struct storage *s, enum storage_ns ns, const char *key, const char *value, size_t len,
		    long ttl, storage_done_cb cb, void *arg);
/* Upsert. */
void storage_put(struct storage *s, enum storage_ns ns, const char *key, const char *value, size_t len,
		 long ttl, storage_done_cb cb, void *arg);
void storage_delete(struct storage *s, enum storage_ns ns, const char *key, storage_done_cb cb, void *arg);
void storage_list(struct storage *s, enum storage_ns ns, const char *cursor, size_t count,
		  storage_list_cb cb, void *arg);
/* Locked read-modify-write, step 1: lock key and read it (E_NOTFOUND
 * releases the lock and reports). */
void storage_update_begin(struct storage *s, enum storage_ns ns, const char *key, storage_locked_cb cb, void *arg);
/* Step 2: write value (NULL: no change) and release the lock. */
void storage_update_finish(struct storage_lock *lock, const char *value, size_t len, storage_done_cb cb, void *arg);

/* For backends: run cb later on the loop with a copy of the result. */
void storage_complete_get(struct storage *s, storage_get_cb cb, void *arg, int status, const char *value, size_t len);
void storage_complete_done(struct storage *s, storage_done_cb cb, void *arg, int status);
void storage_complete_multi(struct storage *s, storage_multi_cb cb, void *arg, int status,
			    char **values, size_t n); /* takes ownership of values[] and each string */
void storage_complete_list(struct storage *s, storage_list_cb cb, void *arg, int status,
			   char **keys, size_t n, char *next_cursor); /* takes ownership */

/* For backends: current time in seconds (wall clock) for TTLs. */
long long storage_now_s(void);

#endif
