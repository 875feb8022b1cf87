/* api.h - the public REST API (spec/api.md §2) as an httpd component. */
#ifndef EXPOSRD_API_H
#define EXPOSRD_API_H

#include "httpd.h"
#include "service.h"

#define API_MAX_BODY (64u << 10) /* JSON request bodies */

struct api;

struct api *api_new(struct service *svc);
void api_free(struct api *api);
/* The component to add to the API port's httpd. */
void api_component(struct api *api, struct httpd_component *c);

/* Shared with the admin API: decode one %-encoded path segment into out
 * (NUL-terminated).  Returns its length or E_INVAL. */
int api_path_segment(const char *p, size_t n, char *out, size_t cap);
/* Split a path into up to max segments (slices into path).  Returns the
 * count or E_LIMIT. */
struct api_seg {
	const char *p;
	size_t n;
};
int api_split_path(const char *path, size_t len, struct api_seg *segs, int max);
int api_seg_is(const struct api_seg *s, const char *lit);

#endif
