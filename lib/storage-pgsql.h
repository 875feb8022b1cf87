/* storage-pgsql.h - settings of the PostgreSQL storage backend (WITH_PGSQL).
 *
 * The backend itself is reached through storage_open() with a
 * postgres:// or postgresql:// URL (storage_pgsql_ops in storage.c's
 * table).  Only what storage_open cannot carry in the URL is set here.
 *
 * Environment (read by each storage_open; for tests and operators):
 *   EXPOSRD_PGSQL_STARTUP_TIMEOUT_MS  how long open() keeps retrying an
 *                                     unreachable database (default 30000)
 *   EXPOSRD_PGSQL_OP_TIMEOUT_MS       bound on every operation, queue wait
 *                                     included (default 5000)
 *
 * Operational notes: each pooled connection uses named prepared
 * statements (behind PgBouncer in transaction mode that needs 1.21+ with
 * max_prepared_statements; a vanished statement is prepared again once).
 * A locked update pins one connection until it is released (at most 30 s),
 * so a pool of at least 2 is advisable when callers read while holding a
 * lock.
 */
#ifndef EXPOSRD_STORAGE_PGSQL_H
#define EXPOSRD_STORAGE_PGSQL_H

#define STORAGE_PGSQL_DEFAULT_POOL 10 /* --storage-pgsql-connection-pool-size */
#define STORAGE_PGSQL_MAX_POOL 1000

/* Maximum number of connections of storages opened afterwards (the value
 * of --storage-pgsql-connection-pool-size).  n <= 0 restores the default;
 * larger than STORAGE_PGSQL_MAX_POOL is capped.  Call before storage_open. */
void storage_pgsql_set_pool_size(int n);

#endif
