/* filewatch.c - file change hints: inotify on Linux, nothing elsewhere
 * (see compat.h). */
#include "compat.h"

#if defined(__linux__) && !COMPAT_FORCE_FALLBACK
#define HAVE_INOTIFY 1
#endif

#if HAVE_INOTIFY
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define DIR_EVENTS (IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB)
#define FILE_EVENTS (IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

int compat_filewatch_open(void)
{
	return inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
}

int compat_filewatch_add(int wfd, const char *path)
{
	char dir[PATH_MAX];
	size_t n = strlen(path);
	if (wfd < 0 || n == 0 || n >= sizeof(dir))
		return -1;
	memcpy(dir, path, n + 1);
	char *slash = strrchr(dir, '/');
	if (!slash)
		memcpy(dir, ".", 2);
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	int rd = inotify_add_watch(wfd, dir, DIR_EVENTS);
	/* The file itself too: it may be a symlink into another directory.
	 * A missing file is fine (the directory watch sees it appear). */
	int rf = inotify_add_watch(wfd, path, FILE_EVENTS);
	return rd >= 0 || rf >= 0 ? 0 : -1;
}

int compat_filewatch_drain(int wfd)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int any = 0;
	for (;;) {
		ssize_t r = read(wfd, buf, sizeof(buf));
		if (r > 0) {
			any = 1;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		return any;
	}
}

void compat_filewatch_close(int wfd)
{
	if (wfd >= 0)
		close(wfd);
}

#else

int compat_filewatch_open(void) { return -1; }
int compat_filewatch_add(int wfd, const char *path) { (void)wfd; (void)path; return -1; }
int compat_filewatch_drain(int wfd) { (void)wfd; return 0; }
void compat_filewatch_close(int wfd) { (void)wfd; }

#endif
