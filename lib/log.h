/* log.h - leveled logging, one line per event, text or JSON lines.
 *
 * Output goes to stdout (the spec's deployments collect stdout).  JSON
 * lines follow spec/config.md §6: {"timestamp","data":{"message"},"host",
 * "level","logger","pid"}.
 */
#ifndef EXPOSRD_LOG_H
#define EXPOSRD_LOG_H

#include <stdio.h>

enum log_level {
	LOG_TRACE = 0,
	LOG_DEBUG,
	LOG_INFO,
	LOG_WARN,
	LOG_ERROR,
	LOG_FATAL,
	LOG_OFF,
};

/* log_setup sets the minimum level and the output format (json != 0 for
 * JSON lines).  out NULL means stdout. */
void log_setup(enum log_level min, int json, FILE *out);
int log_enabled(enum log_level level);

/* log_msg writes one line.  logger names the component ("api", "httpd"). */
void log_msg(enum log_level level, const char *logger, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* log_access writes the one access-log line of an HTTP request. */
void log_access(const char *logger, const char *peer, const char *method,
		const char *path, size_t path_len, int status, long long duration_us);

#define log_trace(...) log_msg(LOG_TRACE, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* fatal logs at FATAL and exits 255.  Only for startup errors and broken
 * invariants. */
void fatal(const char *logger, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

#endif
