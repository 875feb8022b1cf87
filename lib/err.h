/* err.h - shared error codes.
 *
 * Convention: functions return 0 on success or a negative E_* code.
 * I/O-style calls return >0 bytes moved, 0 would block, <0 an E_* code.
 */
#ifndef EXPOSRD_ERR_H
#define EXPOSRD_ERR_H

enum {
	E_OK = 0,
	E_NOMEM = -1,     /* allocation failed */
	E_INVAL = -2,     /* invalid argument or malformed input */
	E_LIMIT = -3,     /* a named limit was exceeded */
	E_IO = -4,        /* system call failed (see errno where logged) */
	E_NOTFOUND = -5,  /* key / object does not exist */
	E_EXISTS = -6,    /* exclusive create found an existing key */
	E_BACKEND = -7,   /* storage or other backend failure */
	E_CLOSED = -8,    /* peer closed the connection */
	E_TIMEOUT = -9,   /* operation timed out */
	E_AGAIN = -10,    /* need more input */
	E_DENIED = -11,   /* permission denied */
	E_BUSY = -12,     /* resource busy (lock held, pool exhausted) */
};

/* err_str returns a static description of an E_* code. */
const char *err_str(int code);

#endif
