/*
 * status.c - status messages and the library version.
 *
 * Both tables come from KV_STATUS_MAP in kv.h, so a new code cannot be
 * added without its message and name.
 */
#include "kv.h"

const char *kv_strerror(int status)
{
    switch (status) {
#define KV__STATUS_TEXT(name, code, text) \
    case code:                            \
        return text;
        KV_STATUS_MAP(KV__STATUS_TEXT)
#undef KV__STATUS_TEXT
    }
    return "unknown status";
}

const char *kv_status_name(int status)
{
    switch (status) {
#define KV__STATUS_NAME(name, code, text) \
    case code:                            \
        return #name;
        KV_STATUS_MAP(KV__STATUS_NAME)
#undef KV__STATUS_NAME
    }
    return "UNKNOWN";
}

const char *kv_version(void)
{
    return KV_VERSION_STRING;
}

int kv_version_number(void)
{
    return KV_VERSION_NUMBER;
}
