#include "err.h"

const char *err_str(int code)
{
	switch (code) {
	case E_OK: return "ok";
	case E_NOMEM: return "out of memory";
	case E_INVAL: return "invalid input";
	case E_LIMIT: return "limit exceeded";
	case E_IO: return "i/o error";
	case E_NOTFOUND: return "not found";
	case E_EXISTS: return "already exists";
	case E_BACKEND: return "backend failure";
	case E_CLOSED: return "connection closed";
	case E_TIMEOUT: return "timed out";
	case E_AGAIN: return "incomplete input";
	case E_DENIED: return "permission denied";
	case E_BUSY: return "busy";
	}
	return "unknown error";
}
