#ifndef CPROTOBUFC_SHIM_H
#define CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>

/// `protobuf_c_empty_string` is an incomplete array, which Swift cannot import. Unpacked messages point
/// their absent string fields at it, so Swift needs its address to tell "absent" from an arena string.
static inline const char *CProtobufC_empty_string(void) { return protobuf_c_empty_string; }
#endif
