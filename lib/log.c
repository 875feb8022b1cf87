#include "log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static enum log_level log_min = LOG_INFO;
static int log_json;
static FILE *log_out;
static char log_hostname[128];
static long log_pid;

static const char *const level_names[] = {
	"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF",
};

void log_setup(enum log_level min, int json, FILE *out)
{
	log_min = min;
	log_json = json;
	log_out = out;
	if (gethostname(log_hostname, sizeof(log_hostname) - 1) != 0)
		memcpy(log_hostname, "localhost", sizeof("localhost"));
	log_pid = (long)getpid();
}

int log_enabled(enum log_level level)
{
	return level >= log_min && level < LOG_OFF;
}

static void format_timestamp(char *out, size_t cap)
{
	struct timeval tv;
	struct tm tm;
	(void)gettimeofday(&tv, NULL);
	time_t secs = tv.tv_sec;
	(void)gmtime_r(&secs, &tm);
	snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

/* Append s as JSON string content (no quotes) into out; truncates safely. */
static size_t append_escaped(char *out, size_t pos, size_t cap, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	for (; *s && pos + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[pos++] = '\\';
			out[pos++] = (char)c;
		} else if (c < 0x20) {
			out[pos++] = '\\';
			out[pos++] = 'u';
			out[pos++] = '0';
			out[pos++] = '0';
			out[pos++] = hex[c >> 4];
			out[pos++] = hex[c & 15];
		} else {
			out[pos++] = (char)c;
		}
	}
	return pos;
}

static void write_line(enum log_level level, const char *logger, const char *msg)
{
	FILE *out = log_out ? log_out : stdout;
	char ts[80]; /* room for any int fields; the real text is 24 bytes */
	format_timestamp(ts, sizeof(ts));
	if (!log_json) {
		fprintf(out, "%s %-5s [%s] %s\n", ts, level_names[level], logger, msg);
		fflush(out);
		return;
	}
	char line[LOG_LINE_MAX + 256];
	size_t pos = 0;
	pos += (size_t)snprintf(line, sizeof(line), "{\"timestamp\":\"%s\",\"data\":{\"message\":\"", ts);
	pos = append_escaped(line, pos, sizeof(line) - 128, msg);
	int n = snprintf(line + pos, sizeof(line) - pos,
			 "\"},\"host\":\"%s\",\"level\":\"%s\",\"logger\":\"%s\",\"pid\":%ld}\n",
			 log_hostname, level_names[level], logger, log_pid);
	if (n > 0)
		pos += (size_t)n < sizeof(line) - pos ? (size_t)n : sizeof(line) - pos - 1;
	fwrite(line, 1, pos, out);
	fflush(out);
}

void log_msg(enum log_level level, const char *logger, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	char msg[LOG_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	write_line(level, logger, msg);
}

void log_access(const char *logger, const char *peer, const char *method,
		const char *path, size_t path_len, int status, long long duration_us)
{
	if (!log_enabled(LOG_INFO))
		return;
	if (path_len > 1024)
		path_len = 1024;
	log_msg(LOG_INFO, logger, "http-request %s %s %.*s %d %lld.%03lldms", peer,
		method, (int)path_len, path, status, duration_us / 1000, duration_us % 1000);
}

void fatal(const char *logger, const char *fmt, ...)
{
	char msg[LOG_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	write_line(LOG_FATAL, logger, msg);
	exit(255);
}
