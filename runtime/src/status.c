/* tinytrain runtime: status names. */
#include "tt/status.h"

const char* tt_status_name(tt_status_t status) {
  switch (status) {
    case TT_OK: return "TT_OK";
    case TT_ERR_ARG: return "TT_ERR_ARG";
    case TT_ERR_NO_MEM: return "TT_ERR_NO_MEM";
    case TT_ERR_UNSUPPORTED: return "TT_ERR_UNSUPPORTED";
    case TT_ERR_INTERNAL: return "TT_ERR_INTERNAL";
  }
  return "TT_ERR_UNKNOWN";
}
